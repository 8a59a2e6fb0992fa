/**
 * @dif-fusion/cli-kit: the apps' process policy — exit codes and error reporting, the
 * terminal progress bar (plain lines off a terminal), closed pipes. Libraries never import it.
 */
export * from './exit';
export * from './progress';
export * from './stdio';
