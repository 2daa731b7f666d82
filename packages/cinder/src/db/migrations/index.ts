import { migration as initial } from './001-initial.ts';

export const migrations = [initial];
