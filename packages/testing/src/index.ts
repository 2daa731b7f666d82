export * from './http-client.ts';
export * from './temp-dir.ts';
export * from './slapd.ts';
export * from './netns.ts';
export * from './test-database.ts';
