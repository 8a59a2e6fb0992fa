/** Tests see both entries, the backend-free root and the tfjs subpath. */
export * from './index';
export * from './tfjs';
