/** One-line user-facing errors (the project's error class, from @dif-fusion/io). */
export { formatError, UserError } from '@dif-fusion/io';
