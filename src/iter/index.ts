export { batch, unbatch } from './batch.js';
export { mapConcurrent, type MapConcurrentOptions } from './map-concurrent.js';
export { take, takeUntilAborted } from './take.js';
export { concat, merge } from './merge.js';
export { Channel } from './channel.js';
export { groupBy } from './group-by.js';
