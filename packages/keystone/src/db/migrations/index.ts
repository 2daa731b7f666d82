import { migration as initial } from './001-initial.ts';
import { migration as cacheGeneration } from './002-cache-generation.ts';

export const migrations = [initial, cacheGeneration];
