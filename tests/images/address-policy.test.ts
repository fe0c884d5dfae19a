/**
 * The address classifier behind the SSRF defaults (issue 12, "Safe by default"). Ranges from the IANA
 * special-purpose registries (RFC 6890 and its updates: iana-ipv4-special-registry, iana-ipv6-special-registry),
 * RFC 1918, RFC 6598 (100.64/10), RFC 4193 (fc00::/7), RFC 4291 (fe80::/10, ff00::/8, ::ffff:0:0/96),
 * RFC 6052 (64:ff9b::/96), RFC 3056 (2002::/16). IPv4 number forms as `inet_aton(3)` reads them.
 */
import { describe, expect, it } from 'vitest';
import { disallowedReason, ipv4ToNumber, isAddressLiteral } from '../../src/images/address-policy.js';

describe('disallowedReason', () => {
  it.each([
    // loopback in every IPv4 spelling a URL or inet_aton accepts
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['2130706433', 'loopback'],
    ['0x7f000001', 'loopback'],
    ['0x7f.1', 'loopback'],
    ['0177.0.0.1', 'loopback'],
    ['0177.1', 'loopback'],
    ['127.1', 'loopback'],
    ['127.0.1', 'loopback'],
    ['0x7F.0.0.0x1', 'loopback'],
    ['::1', 'loopback'],
    ['[::1]', 'loopback'],
    ['0:0:0:0:0:0:0:1', 'loopback'],
    // IPv4 inside IPv6
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['[::ffff:7f00:1]', 'loopback'],
    ['::ffff:10.1.2.3', 'private'],
    ['::ffff:169.254.169.254', 'link-local'],
    ['::127.0.0.1', 'reserved'],
    ['64:ff9b::127.0.0.1', 'loopback'],
    ['64:ff9b::a9fe:a9fe', 'link-local'],
    ['2002:7f00:1::', 'loopback'],
    ['2002:c0a8:0101::1', 'private'],
    // unspecified, private, shared, link-local, multicast, broadcast
    ['0.0.0.0', 'unspecified'],
    ['0', 'unspecified'],
    ['0x', 'unspecified'], // WHATWG URL and inet_aton read a bare 0x as 0
    ['0.1.2.3', 'unspecified'],
    ['::', 'unspecified'],
    ['10.0.0.1', 'private'],
    ['012.0.0.1', 'private'],
    ['167772161', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['0xc0a80101', 'private'],
    ['fc00::1', 'private'],
    ['fd12:3456:789a::1', 'private'],
    ['fec0::1', 'private'],
    ['64:ff9b:1::1', 'private'],
    ['100.64.0.1', 'shared'],
    ['100.127.255.255', 'shared'],
    ['169.254.169.254', 'link-local'],
    ['169.254.0.1', 'link-local'],
    ['2852039166', 'link-local'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    ['febf::1', 'link-local'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['ff02::1', 'multicast'],
    ['ff05::1:3', 'multicast'],
    ['255.255.255.255', 'broadcast'],
    // the rest of the special-purpose space
    ['240.0.0.1', 'reserved'],
    ['192.0.0.8', 'reserved'],
    ['192.88.99.1', 'reserved'],
    ['192.0.2.1', 'documentation'],
    ['198.51.100.7', 'documentation'],
    ['203.0.113.9', 'documentation'],
    ['2001:db8::1', 'documentation'],
    ['198.18.0.1', 'benchmarking'],
    ['198.19.255.255', 'benchmarking'],
    ['100::1', 'reserved'],
    ['2001::1', 'reserved'],
    ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'reserved'],
    ['::2', 'reserved'],
    ['4000::1', 'reserved'],
  ])('%s is %s', (address, reason) => {
    expect(disallowedReason(address)).toBe(reason);
  });

  it.each([
    '8.8.8.8',
    '1.1.1.1',
    '134744072', // 8.8.8.8 as one number
    '0x08080808',
    '172.15.255.255',
    '172.32.0.1',
    '100.63.255.255',
    '100.128.0.1',
    '169.253.255.255',
    '192.167.255.255',
    '198.17.255.255',
    '223.255.255.255',
    '93.184.216.34',
    '2606:4700:4700::1111',
    '2001:4860:4860::8888',
    '2a00:1450:4001:81b::200e',
    '::ffff:8.8.8.8',
    '64:ff9b::808:808',
    '2002:0808:0808::1',
  ])('%s is public', (address) => {
    expect(disallowedReason(address)).toBeNull();
  });

  it('gives null for names and text that is no address', () => {
    for (const text of ['localhost', 'example.com', '', '1.2.3.4.5', '256.1.1.1', '1.2.3.256', '09.1.1.1', '1..1', 'fe80::zz']) {
      expect(disallowedReason(text)).toBeNull();
    }
  });
});

describe('ipv4ToNumber and isAddressLiteral', () => {
  it('read one to four parts in decimal, octal and hex, refusing overflow', () => {
    expect(ipv4ToNumber('1.2.3.4')).toBe(0x01020304);
    expect(ipv4ToNumber('1.2.772')).toBe(0x01020304);
    expect(ipv4ToNumber('1.131844')).toBe(0x01020304);
    expect(ipv4ToNumber('16909060')).toBe(0x01020304);
    expect(ipv4ToNumber('4294967295')).toBe(0xffffffff);
    expect(ipv4ToNumber('4294967296')).toBeNull();
    expect(ipv4ToNumber('1.16777216')).toBeNull();
    expect(ipv4ToNumber('08.1.1.1')).toBeNull();
  });

  it('tell literals from host names', () => {
    expect(isAddressLiteral('127.0.0.1')).toBe(true);
    expect(isAddressLiteral('[::1]')).toBe(true);
    expect(isAddressLiteral('2130706433')).toBe(true);
    expect(isAddressLiteral('localhost')).toBe(false);
    expect(isAddressLiteral('img.example.com')).toBe(false);
  });
});
