/** Every CLI command, in help order. Adding a command is adding its file and a line here. */
import type { Command } from '../command.ts';
import { analyze } from './analyze.ts';
import { bootstrap } from './bootstrap.ts';
import { check } from './check.ts';
import { demo } from './demo.ts';
import { diagnose } from './diagnose.ts';
import { invoke } from './invoke.ts';
import { metrics } from './metrics.ts';
import { refresh } from './refresh.ts';
import { remediate } from './remediate.ts';

export const COMMANDS: Command[] = [check, analyze, refresh, metrics, diagnose, remediate, bootstrap, demo, invoke];
