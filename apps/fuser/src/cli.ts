#!/usr/bin/env node
import { main } from './program';

// `dif-fuse --help | head`: a closed pipe is not an error.
for (const s of [process.stdout, process.stderr])
  s.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
