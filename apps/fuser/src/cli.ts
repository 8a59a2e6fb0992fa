#!/usr/bin/env node
import { hugePagesEnv, restartWith, watchParent } from './hugepages';

const argv = process.argv.slice(2);
// A model fusion restarts once with glibc's huge-page tunable (hugepages.ts); nothing else
// is loaded before that decision.
const env = hugePagesEnv(argv);
if (env) restartWith(env);
else {
  watchParent();
  const [{ exitOnClosedPipe }, { main }] = await Promise.all([
    import('@dif-fusion/cli-kit'),
    import('./program'),
  ]);
  // `dif-fuse --help | head`: a closed pipe is not an error.
  exitOnClosedPipe();
  process.exitCode = await main(argv);
}
