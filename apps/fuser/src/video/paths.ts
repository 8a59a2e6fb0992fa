/**
 * Which paths are videos: extensions only, no imports, so the CLI's first lines (the huge-page
 * restart, hugepages.ts) can ask before anything else loads.
 */

/** Extensions `-o` / `--ir` / `--vis` treat as video containers. */
export const VIDEO_EXTENSIONS = ['mp4', 'm4v', 'mov', 'mkv', 'webm', 'avi', 'ts', 'mts', 'mpg'];

export function isVideoPath(path: string): boolean {
  const ext = /\.([^./\\]+)$/.exec(path)?.[1]?.toLowerCase();
  return ext !== undefined && VIDEO_EXTENSIONS.includes(ext);
}
