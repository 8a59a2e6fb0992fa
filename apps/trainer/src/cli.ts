#!/usr/bin/env node
/** `dif-train` entry point. */
import { createProgram } from './program';

const program = createProgram();
await program.parseAsync(process.argv);
