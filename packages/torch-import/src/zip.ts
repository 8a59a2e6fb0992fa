/**
 * Random access to the members of a zip file (yauzl): the central directory is read once,
 * members are read one at a time on demand, so a multi-GB checkpoint is never in memory whole.
 */
import yauzl from 'yauzl';

export interface ZipMember {
  readonly name: string;
  readonly size: number;
  readonly compressed: boolean;
}

export class ZipReader {
  private constructor(
    private readonly zip: yauzl.ZipFile,
    private readonly entries: Map<string, yauzl.Entry>,
  ) {}

  static async open(path: string): Promise<ZipReader> {
    // strictFileNames off: torch archives only hold relative names, but a foreign zip with
    // odd names should fail on "no data.pkl", not on a name check.
    const zip = await yauzl.openPromise(path, {
      lazyEntries: true,
      autoClose: false,
      strictFileNames: false,
    });
    const entries = new Map<string, yauzl.Entry>();
    try {
      for await (const entry of zip.eachEntry()) entries.set(entry.fileName, entry);
    } catch (e) {
      zip.close();
      throw e;
    }
    return new ZipReader(zip, entries);
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  member(name: string): ZipMember | undefined {
    const e = this.entries.get(name);
    return e && { name, size: e.uncompressedSize, compressed: e.compressionMethod !== 0 };
  }

  /** The whole member, in a fresh (8-byte aligned) buffer. */
  async read(name: string): Promise<Uint8Array> {
    const entry = this.entries.get(name);
    if (!entry) throw new Error(`zip member ${name} not found`);
    const out = new Uint8Array(entry.uncompressedSize);
    const stream = await this.zip.openReadStreamPromise(entry);
    let at = 0;
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      if (at + chunk.length > out.length)
        throw new Error(`zip member ${name} is longer than its header says`);
      out.set(chunk, at);
      at += chunk.length;
    }
    if (at !== out.length) throw new Error(`zip member ${name} is truncated`);
    return out;
  }

  close(): void {
    this.zip.close();
  }
}
