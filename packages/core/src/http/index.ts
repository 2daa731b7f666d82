export * from './faults.ts';
export * from './microversion.ts';
export * from './pagination.ts';
export * from './server.ts';
export * from './validation.ts';
export * from './versions.ts';
export * from './ops-routes.ts';
