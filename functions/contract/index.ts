export * from './vocabulary.ts';
export * from './metrics.ts';
export * from './checks.ts';
export * from './payloads.ts';
export * from './report.ts';
export * from './environment.ts';
export * from './alarms.ts';
export * from './signals.ts';
