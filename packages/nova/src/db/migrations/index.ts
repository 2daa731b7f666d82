import { migration as initial } from './001-initial.ts';
import { migration as defaultFlavors } from './002-default-flavors.ts';

export const migrations = [initial, defaultFlavors];
