/** Every CLI command, in help order. Adding a command is adding its file and a line here. */
import type { Command } from '../command.ts';
import { check } from './check.ts';
import { demo } from './demo.ts';

export const COMMANDS: Command[] = [check, demo];
