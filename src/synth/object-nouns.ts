/**
 * Nouns that name concrete objects, grouped with their synonyms, for flagging answers that name an
 * object no caption or box supports. The list covers the 80 COCO categories, the shapes demo domain and
 * a few everyday synonyms; an answer naming a word outside the list is never flagged.
 */

const GROUPS: readonly (readonly string[])[] = [
  ['person', 'people', 'man', 'woman', 'boy', 'girl', 'child', 'kid', 'lady', 'guy', 'player', 'rider', 'cyclist', 'skier', 'surfer', 'skateboarder', 'pedestrian'],
  ['bicycle', 'bike', 'cycle'],
  ['car', 'vehicle', 'automobile', 'taxi'],
  ['motorcycle', 'motorbike', 'scooter'],
  ['airplane', 'plane', 'aeroplane', 'jet', 'aircraft'],
  ['bus'],
  ['train', 'locomotive'],
  ['truck', 'lorry'],
  ['boat', 'ship', 'sailboat', 'canoe', 'kayak'],
  ['traffic light'],
  ['fire hydrant', 'hydrant'],
  ['stop sign'],
  ['parking meter'],
  ['bench'],
  ['bird', 'pigeon', 'seagull', 'duck'],
  ['cat', 'kitten'],
  ['dog', 'puppy'],
  ['horse', 'pony'],
  ['sheep', 'lamb'],
  ['cow', 'cattle', 'bull'],
  ['elephant'],
  ['bear'],
  ['zebra'],
  ['giraffe'],
  ['backpack', 'rucksack'],
  ['umbrella'],
  ['handbag', 'purse'],
  ['tie', 'necktie'],
  ['suitcase', 'luggage'],
  ['frisbee', 'flying disc'],
  ['ski'],
  ['snowboard'],
  ['ball', 'sports ball', 'football', 'soccer ball', 'basketball', 'tennis ball', 'baseball'],
  ['kite'],
  ['baseball bat'],
  ['baseball glove', 'glove', 'mitt'],
  ['skateboard'],
  ['surfboard'],
  ['tennis racket', 'racket', 'racquet'],
  ['bottle'],
  ['wine glass', 'glass'],
  ['cup', 'mug'],
  ['fork'],
  ['knife'],
  ['spoon'],
  ['bowl'],
  ['banana'],
  ['apple'],
  ['sandwich'],
  ['broccoli'],
  ['carrot'],
  ['hot dog', 'hotdog'],
  ['pizza'],
  ['donut', 'doughnut'],
  ['cake'],
  ['chair', 'stool'],
  ['couch', 'sofa'],
  ['potted plant', 'houseplant', 'plant'],
  ['bed'],
  ['dining table', 'table', 'desk'],
  ['toilet'],
  ['tv', 'television', 'monitor', 'screen'],
  ['laptop', 'computer'],
  ['mouse'],
  ['remote', 'remote control'],
  ['keyboard'],
  ['cell phone', 'phone', 'smartphone', 'mobile phone'],
  ['microwave'],
  ['oven', 'stove'],
  ['toaster'],
  ['sink'],
  ['refrigerator', 'fridge'],
  ['book'],
  ['clock'],
  ['vase'],
  ['scissors'],
  ['teddy bear', 'teddy'],
  ['hair drier', 'hair dryer', 'hairdryer'],
  ['toothbrush'],
  // The shapes demo domain.
  ['circle'],
  ['square'],
  ['triangle'],
  ['star'],
  ['hexagon'],
  ['rectangle'],
  ['pentagon'],
];

const IRREGULAR: Readonly<Record<string, string>> = {
  people: 'person',
  men: 'man',
  women: 'woman',
  children: 'child',
  mice: 'mouse',
  knives: 'knife',
  skis: 'ski',
  buses: 'bus',
  glasses: 'glass',
  scissors: 'scissors',
  sheep: 'sheep',
};

/** A rough English singular: enough to match "circles" with "circle" and "boxes" with "box". */
export function singular(word: string): string {
  const w = word.toLowerCase();
  if (IRREGULAR[w]) return IRREGULAR[w];
  if (w.length > 4 && w.endsWith('ies')) return `${w.slice(0, -3)}y`;
  if (w.length > 4 && /(ses|xes|zes|ches|shes)$/.test(w)) return w.slice(0, -2);
  if (w.length > 3 && w.endsWith('s') && !w.endsWith('ss') && !w.endsWith('us')) return w.slice(0, -1);
  return w;
}

/** Words of a text, lower case and singular. */
export function words(text: string): string[] {
  return (text.toLowerCase().match(/[a-z]+(?:'[a-z]+)?/g) ?? []).map(singular);
}

interface NounEntry {
  /** The noun's words in singular form, e.g. ['traffic', 'light']. */
  parts: string[];
  group: number;
}

const ENTRIES: NounEntry[] = GROUPS.flatMap((group, index) => group.map((noun) => ({ parts: noun.split(' ').map(singular), group: index })));

/** Object groups named in a text (by any of their nouns), with the noun as written. */
function namedGroups(tokens: readonly string[]): Map<number, string> {
  const found = new Map<number, string>();
  // Longest nouns first, so "teddy bear" is taken as a toy rather than a bear.
  const byLength = [...ENTRIES].sort((a, b) => b.parts.length - a.parts.length);
  const used = new Array<boolean>(tokens.length).fill(false);
  for (const entry of byLength) {
    for (let i = 0; i + entry.parts.length <= tokens.length; i++) {
      if (entry.parts.some((part, k) => tokens[i + k] !== part || used[i + k])) continue;
      for (let k = 0; k < entry.parts.length; k++) used[i + k] = true;
      if (!found.has(entry.group)) found.set(entry.group, entry.parts.join(' '));
    }
  }
  return found;
}

/** The evidence about an image: words of its captions and box labels. */
export class ObjectVocabulary {
  private readonly groups: Set<number>;
  private readonly tokens: Set<string>;

  constructor(texts: readonly string[]) {
    const tokenLists = texts.map((text) => words(text));
    this.tokens = new Set(tokenLists.flat());
    this.groups = new Set(tokenLists.flatMap((tokens) => [...namedGroups(tokens).keys()]));
  }

  /** True when the evidence uses this word (singular form compared). */
  hasWord(word: string): boolean {
    return this.tokens.has(singular(word));
  }

  /** Object nouns in `text` whose object (or a synonym of it) appears in no caption or box label. */
  unsupported(text: string): string[] {
    const out: string[] = [];
    for (const [group, noun] of namedGroups(words(text))) {
      if (!this.groups.has(group)) out.push(noun);
    }
    return out.sort();
  }
}
