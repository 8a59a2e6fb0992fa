/**
 * `dif-train export` (owned by the ONNX export work). Stub until it lands: registers nothing.
 */
import type { Command } from 'commander';

export function registerExportCommand(_program: Command): void {}
