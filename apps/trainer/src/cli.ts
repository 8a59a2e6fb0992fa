#!/usr/bin/env node
/** `dif-train` entry point. */
import { exitOnClosedPipe } from '@dif-fusion/cli-kit';
import { main } from './program';

// `dif-train --help | head`: a closed pipe is not an error.
exitOnClosedPipe();

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
