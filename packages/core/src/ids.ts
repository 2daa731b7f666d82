import { randomBytes, randomUUID } from 'node:crypto';

/** Injected id source: upstream ids are UUIDs, Keystone's are UUID4 hex without dashes. */
export interface IdSource {
  uuid(): string;
  /** 32 lowercase hex characters (Keystone's id format). */
  hex(): string;
}

export const randomIds: IdSource = {
  uuid: () => randomUUID(),
  hex: () => randomUUID().replaceAll('-', ''),
};

/** Deterministic ids for tests: 00000000-0000-4000-8000-000000000001, … */
export class SequentialIds implements IdSource {
  private n = 0;
  uuid(): string {
    this.n += 1;
    const tail = this.n.toString(16).padStart(12, '0');
    return `00000000-0000-4000-8000-${tail}`;
  }
  hex(): string {
    return this.uuid().replaceAll('-', '');
  }
}

export function randomToken(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}
