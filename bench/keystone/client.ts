import { writeFileSync } from 'node:fs';

export interface Account {
  user: string;
  password: string;
  project: string;
}

function projectScope(project: string) {
  return { project: { name: project, domain: { id: 'default' } } };
}

async function issue(url: string, body: unknown): Promise<string> {
  const res = await fetch(`${url}/v3/auth/tokens`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  const token = res.headers.get('x-subject-token');
  if (res.status !== 201 || !token) throw new Error(`POST ${url}/v3/auth/tokens: ${res.status} ${text.slice(0, 300)}`);
  return token;
}

/**
 * One password authentication, never retried: upstream locks a user out after
 * two failures, which would spoil every later figure.
 */
export function passwordToken(url: string, a: Account): Promise<string> {
  return issue(url, {
    auth: {
      identity: { methods: ['password'], password: { user: { name: a.user, domain: { id: 'default' }, password: a.password } } },
      scope: projectScope(a.project),
    },
  });
}

/**
 * Writes `count` distinct tokens, one a line, each a rescoping of `token`
 * (the token method: no password hashing, so thousands a second).
 */
export async function mintTokens(o: { url: string; token: string; project: string; count: number; file: string; concurrency: number }): Promise<void> {
  const body = { auth: { identity: { methods: ['token'], token: { id: o.token } }, scope: projectScope(o.project) } };
  const tokens: string[] = [];
  const worker = async () => {
    while (tokens.length < o.count) tokens.push(await issue(o.url, body));
  };
  await Promise.all(Array.from({ length: o.concurrency }, worker));
  writeFileSync(o.file, tokens.slice(0, o.count).join('\n') + '\n');
}
