/**
 * Which network destinations a dataset's URLs may reach. A public URL list must not make the curation host
 * fetch its own services or its cloud's metadata endpoint (SSRF), so by default only globally routable
 * unicast addresses are allowed; everything else has a reason:
 *
 * | reason | IPv4 | IPv6 |
 * |---|---|---|
 * | `unspecified` | 0.0.0.0/8 | ::/128 |
 * | `loopback` | 127.0.0.0/8 | ::1/128 |
 * | `private` | 10/8, 172.16/12, 192.168/16 | fc00::/7 (unique local), fec0::/10 (site-local), 64:ff9b:1::/48 |
 * | `shared` (carrier-grade NAT) | 100.64.0.0/10 | |
 * | `link-local` (cloud metadata at 169.254.169.254) | 169.254.0.0/16 | fe80::/10 |
 * | `multicast` | 224.0.0.0/4 | ff00::/8 |
 * | `broadcast` | 255.255.255.255 | |
 * | `reserved` | 192.0.0.0/24, 192.88.99.0/24, 240.0.0.0/4 | outside 2000::/3, 2001::/23, 100::/64, ::/96 (IPv4-compatible) |
 * | `documentation` | 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 | 2001:db8::/32 |
 * | `benchmarking` | 198.18.0.0/15 | |
 *
 * IPv6 addresses that carry an IPv4 address are judged by it: IPv4-mapped `::ffff:a.b.c.d`, NAT64 `64:ff9b::a.b.c.d` and 6to4 `2002:AABB:CCDD::`. IPv4 literals are read the way URL
 * parsers and `inet_aton` read them: `2130706433`, `0x7f.1`, `0177.0.0.1` and `127.1` are all 127.0.0.1.
 */
import { isIP } from 'node:net';

export type AddressReason =
  | 'unspecified'
  | 'loopback'
  | 'private'
  | 'shared'
  | 'link-local'
  | 'multicast'
  | 'broadcast'
  | 'reserved'
  | 'documentation'
  | 'benchmarking';

/** [first address, prefix length, reason], most specific first where ranges nest. */
const IPV4_RANGES: readonly [string, number, AddressReason][] = [
  ['0.0.0.0', 8, 'unspecified'],
  ['10.0.0.0', 8, 'private'],
  ['100.64.0.0', 10, 'shared'],
  ['127.0.0.0', 8, 'loopback'],
  ['169.254.0.0', 16, 'link-local'],
  ['172.16.0.0', 12, 'private'],
  ['192.0.0.0', 24, 'reserved'],
  ['192.0.2.0', 24, 'documentation'],
  ['192.88.99.0', 24, 'reserved'],
  ['192.168.0.0', 16, 'private'],
  ['198.18.0.0', 15, 'benchmarking'],
  ['198.51.100.0', 24, 'documentation'],
  ['203.0.113.0', 24, 'documentation'],
  ['224.0.0.0', 4, 'multicast'],
  ['255.255.255.255', 32, 'broadcast'],
  ['240.0.0.0', 4, 'reserved'],
];

const IPV4_TABLE = IPV4_RANGES.map(([base, bits, reason]) => {
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return { base: (ipv4ToNumber(base)! & mask) >>> 0, mask, reason };
});

/**
 * Why `address` may not be reached, or null when it is a public unicast address. `address` is an IP
 * literal (IPv6 with or without brackets, IPv4 in any form `inet_aton` accepts); anything else is null.
 */
export function disallowedReason(address: string): AddressReason | null {
  const text = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  if (isIP(text) === 6) return ipv6Reason(ipv6ToBigInt(text));
  const v4 = ipv4ToNumber(text);
  return v4 === null ? null : ipv4Reason(v4);
}

/** Whether `text` is an IP literal in a form `disallowedReason` reads. */
export function isAddressLiteral(text: string): boolean {
  const bare = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  return isIP(bare) !== 0 || ipv4ToNumber(bare) !== null;
}

function ipv4Reason(value: number): AddressReason | null {
  for (const { base, mask, reason } of IPV4_TABLE) if (((value & mask) >>> 0) === base) return reason;
  return null;
}

function ipv6Reason(value: bigint): AddressReason | null {
  const top = (bits: number) => value >> BigInt(128 - bits);
  const embedded = Number(value & 0xffffffffn);
  if (value === 0n) return 'unspecified';
  if (value === 1n) return 'loopback';
  if (top(96) === 0xffffn) return ipv4Reason(embedded) ?? null; // ::ffff:a.b.c.d
  if (top(96) === 0n) return 'reserved'; // ::a.b.c.d, IPv4-compatible (deprecated, never routed)
  if (top(96) === 0x0064ff9b0000000000000000n) return ipv4Reason(embedded); // NAT64 64:ff9b::/96
  if (top(48) === 0x0064ff9b0001n) return 'private'; // local-use NAT64
  if (top(8) === 0xffn) return 'multicast';
  if (top(10) === 0x3fan) return 'link-local'; // fe80::/10
  if (top(10) === 0x3fbn) return 'private'; // fec0::/10 site-local
  if (top(7) === 0x7en) return 'private'; // fc00::/7
  if (top(64) === 0x0100000000000000n) return 'reserved'; // discard-only
  if (top(3) !== 1n) return 'reserved'; // not global unicast 2000::/3
  if (top(32) === 0x20010db8n) return 'documentation';
  if (top(23) === 0x20010000n >> 9n) return 'reserved'; // IETF protocol assignments (Teredo included)
  if (top(16) === 0x2002n) return ipv4Reason(Number((value >> 80n) & 0xffffffffn)); // 6to4
  return null;
}

/** IPv4 as `inet_aton` reads it: 1 to 4 parts, each decimal, octal (leading 0) or hex (0x); null if not one. */
export function ipv4ToNumber(text: string): number | null {
  const parts = text.split('.');
  if (parts.length === 0 || parts.length > 4) return null;
  const values: number[] = [];
  for (const part of parts) {
    let value: number;
    if (/^0x[0-9a-f]*$/i.test(part)) value = part.length === 2 ? 0 : parseInt(part.slice(2), 16);
    else if (/^0[0-7]+$/.test(part)) value = parseInt(part, 8);
    else if (/^(0|[1-9][0-9]*)$/.test(part)) value = Number(part);
    else return null;
    values.push(value);
  }
  const last = values.pop()!;
  if (values.some((v) => v > 255)) return null;
  const room = 2 ** (8 * (4 - values.length));
  if (last >= room) return null;
  return values.reduce((acc, v, i) => acc + v * 2 ** (8 * (3 - i)), 0) + last;
}

/** An IPv6 literal (as `net.isIP` accepts it, zone index allowed) as a 128-bit number. */
function ipv6ToBigInt(text: string): bigint {
  let address = text.split('%', 1)[0]!.toLowerCase();
  // A trailing dotted quad is the last 32 bits.
  const quad = /(\d+\.\d+\.\d+\.\d+)$/.exec(address);
  if (quad) {
    const v4 = ipv4ToNumber(quad[1]!)!;
    address = `${address.slice(0, quad.index)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const [head, tail] = address.includes('::') ? address.split('::') : [address, null];
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail ? tail.split(':') : [];
  const missing = 8 - headGroups.length - tailGroups.length;
  const groups = tail === null ? headGroups : [...headGroups, ...Array<string>(missing).fill('0'), ...tailGroups];
  return groups.reduce((acc, group) => (acc << 16n) | BigInt(parseInt(group || '0', 16)), 0n);
}
