#!/usr/bin/env node
// Runs the TypeScript CLI in place through tsx, so a checkout needs no build step after npm ci.
import { register } from 'tsx/esm/api';

register();
await import('./attempt-ops.ts');
