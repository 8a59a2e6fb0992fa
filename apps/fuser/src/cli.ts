#!/usr/bin/env node
import { exitOnClosedPipe } from '@dif-fusion/cli-kit';
import { main } from './program';

// `dif-fuse --help | head`: a closed pipe is not an error.
exitOnClosedPipe();

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
