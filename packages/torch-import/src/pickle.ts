/**
 * A restricted pickle reader: it interprets the opcodes Python's pickle protocols 0-5 use for
 * plain data (numbers, strings, bytes, lists, tuples, dicts, sets) and hands every reference
 * to a Python global to `resolveGlobal`, which either returns a stand-in from an allow-list
 * or refuses. Nothing is ever imported or executed: "calling" a global (REDUCE) only works
 * on stand-ins that say how to rebuild their value from plain data.
 *
 * Opcode reference: CPython Lib/pickletools.py.
 */

import { DifFusionError } from '@dif-fusion/io';

/** Any failure to read or map a checkpoint: one line, shown to the user as is. */
export class TorchImportError extends DifFusionError {
  override name = 'TorchImportError';
}

/** A Python tuple (told apart from lists: lists take APPEND, REDUCE takes a tuple). */
export class PyTuple extends Array<unknown> {}

function tuple(items: unknown[]): PyTuple {
  const t = new PyTuple();
  for (const v of items) t.push(v);
  return t;
}

/** A Python dict or collections.OrderedDict (insertion order kept), with instance attributes set by BUILD. */
export class PyDict extends Map<unknown, unknown> {
  /** Attributes set on the object (e.g. a state_dict's `_metadata`). */
  attrs: Record<string, unknown> = {};
  constructor(readonly ordered = false) {
    super();
  }
}

/**
 * A Python global the pickle may refer to. `call` rebuilds a value from the REDUCE arguments;
 * a global without `call` can only be passed around as data (e.g. a storage type).
 */
export interface PyGlobal {
  readonly module: string;
  readonly name: string;
  call?(args: unknown[]): unknown;
  /** BUILD on a value this global made: apply `state` (default: refuse). */
  build?(target: unknown, state: unknown): void;
}

export interface UnpickleHooks {
  /** Return the stand-in for `module.name`, or throw a TorchImportError refusing it. */
  resolveGlobal(module: string, name: string): PyGlobal;
  /** Resolve a persistent id (BINPERSID/PERSID); absent: persistent ids are refused. */
  persistentLoad?(pid: unknown): unknown;
}

const OPNAMES: Record<number, string> = {
  40: 'MARK',
  46: 'STOP',
  48: 'POP',
  49: 'POP_MARK',
  50: 'DUP',
  70: 'FLOAT',
  73: 'INT',
  74: 'BININT',
  75: 'BININT1',
  76: 'LONG',
  77: 'BININT2',
  78: 'NONE',
  80: 'PERSID',
  81: 'BINPERSID',
  82: 'REDUCE',
  83: 'STRING',
  84: 'BINSTRING',
  85: 'SHORT_BINSTRING',
  86: 'UNICODE',
  88: 'BINUNICODE',
  97: 'APPEND',
  98: 'BUILD',
  99: 'GLOBAL',
  100: 'DICT',
  125: 'EMPTY_DICT',
  101: 'APPENDS',
  103: 'GET',
  104: 'BINGET',
  105: 'INST',
  106: 'LONG_BINGET',
  108: 'LIST',
  93: 'EMPTY_LIST',
  111: 'OBJ',
  112: 'PUT',
  113: 'BINPUT',
  114: 'LONG_BINPUT',
  115: 'SETITEM',
  116: 'TUPLE',
  41: 'EMPTY_TUPLE',
  117: 'SETITEMS',
  71: 'BINFLOAT',
  128: 'PROTO',
  129: 'NEWOBJ',
  130: 'EXT1',
  131: 'EXT2',
  132: 'EXT4',
  133: 'TUPLE1',
  134: 'TUPLE2',
  135: 'TUPLE3',
  136: 'NEWTRUE',
  137: 'NEWFALSE',
  138: 'LONG1',
  139: 'LONG4',
  66: 'BINBYTES',
  67: 'SHORT_BINBYTES',
  140: 'SHORT_BINUNICODE',
  141: 'BINUNICODE8',
  142: 'BINBYTES8',
  143: 'EMPTY_SET',
  144: 'ADDITEMS',
  145: 'FROZENSET',
  146: 'NEWOBJ_EX',
  147: 'STACK_GLOBAL',
  148: 'MEMOIZE',
  149: 'FRAME',
  150: 'BYTEARRAY8',
  151: 'NEXT_BUFFER',
  152: 'READONLY_BUFFER',
};

/** Python int from little-endian two's complement bytes (LONG1/LONG4): a number when safe, else a bigint. */
function decodeLong(bytes: Uint8Array): number | bigint {
  if (bytes.length === 0) return 0;
  let v = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]);
  if (bytes[bytes.length - 1] & 0x80) v -= 1n << BigInt(8 * bytes.length);
  return narrowInt(v);
}

function narrowInt(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)
    ? Number(v)
    : v;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const latin1 = new TextDecoder('latin1');

/** Python's raw-unicode-escape decoding (UNICODE opcode, protocol 0). */
function rawUnicodeEscape(bytes: Uint8Array): string {
  const s = latin1.decode(bytes);
  return s.replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_, a, b) =>
    String.fromCodePoint(Number.parseInt(a ?? b, 16)),
  );
}

/** A Python string literal as the text protocols write it (STRING opcode): 'abc' or "abc" with escapes. */
function pyStringLiteral(text: string, where: string): string {
  const q = text[0];
  if ((q !== "'" && q !== '"') || text[text.length - 1] !== q || text.length < 2)
    throw new TorchImportError(`${where}: STRING argument is not a quoted string`);
  return text.slice(1, -1).replace(/\\(x[0-9a-fA-F]{2}|[0-7]{1,3}|.)/g, (_, e: string) => {
    if (e[0] === 'x') return String.fromCharCode(Number.parseInt(e.slice(1), 16));
    if (/^[0-7]/.test(e)) return String.fromCharCode(Number.parseInt(e, 8));
    const map: Record<string, string> = {
      n: '\n',
      r: '\r',
      t: '\t',
      '\\': '\\',
      "'": "'",
      '"': '"',
      '0': '\0',
    };
    return map[e] ?? `\\${e}`;
  });
}

/**
 * Interpret a pickle. `where` names the source in error messages (e.g. `model.pth:archive/data.pkl`).
 * Throws TorchImportError for refused globals, unsupported opcodes and malformed data.
 */
export function unpickle(data: Uint8Array, hooks: UnpickleHooks, where = 'pickle'): unknown {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let pos = 0;
  let stack: unknown[] = [];
  const marks: unknown[][] = [];
  const memo = new Map<number, unknown>();

  const fail = (msg: string): never => {
    throw new TorchImportError(`${where}: ${msg}`);
  };
  const need = (n: number): void => {
    if (pos + n > data.length) fail(`truncated pickle (needed ${n} bytes at offset ${pos})`);
  };
  const u8 = (): number => {
    need(1);
    return data[pos++];
  };
  const u16 = (): number => {
    need(2);
    const v = view.getUint16(pos, true);
    pos += 2;
    return v;
  };
  const u32 = (): number => {
    need(4);
    const v = view.getUint32(pos, true);
    pos += 4;
    return v;
  };
  const i32 = (): number => {
    need(4);
    const v = view.getInt32(pos, true);
    pos += 4;
    return v;
  };
  const u64 = (): number => {
    need(8);
    const v = view.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail('length field too large');
    return Number(v);
  };
  const bytes = (n: number): Uint8Array => {
    need(n);
    const b = data.subarray(pos, pos + n);
    pos += n;
    return b;
  };
  const lineBytes = (): Uint8Array => {
    const end = data.indexOf(0x0a, pos);
    if (end < 0) fail('truncated pickle (missing newline)');
    const b = data.subarray(pos, end);
    pos = end + 1;
    return b;
  };
  const line = (): string => latin1.decode(lineBytes());
  const str = (b: Uint8Array): string => {
    try {
      return utf8.decode(b);
    } catch {
      return fail('invalid UTF-8 in a string');
    }
  };
  const pop = (): unknown => {
    if (stack.length === 0) fail('stack underflow');
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) fail('stack underflow');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const items = stack;
    const prev = marks.pop();
    if (!prev) return fail('MARK missing');
    stack = prev;
    return items;
  };
  const memoGet = (i: number): unknown => {
    if (!memo.has(i)) fail(`memo key ${i} not found`);
    return memo.get(i);
  };
  const asGlobal = (v: unknown, op: string): PyGlobal => {
    if (v && typeof v === 'object' && 'module' in v && 'name' in v && !(v instanceof PyDict))
      return v as PyGlobal;
    return fail(`${op} on something that is not a global`);
  };
  const global = (module: string, name: string): PyGlobal => hooks.resolveGlobal(module, name);
  const setItems = (target: unknown, items: unknown[]): void => {
    if (!(target instanceof Map)) fail('SETITEM(S) on something that is not a dict');
    const d = target as Map<unknown, unknown>;
    for (let i = 0; i + 1 < items.length; i += 2) d.set(items[i], items[i + 1]);
  };
  const appendItems = (target: unknown, items: unknown[]): void => {
    if (!Array.isArray(target) || target instanceof PyTuple)
      fail('APPEND(S) on something that is not a list');
    (target as unknown[]).push(...items);
  };
  const addItems = (target: unknown, items: unknown[]): void => {
    if (!(target instanceof Set)) fail('ADDITEMS on something that is not a set');
    for (const v of items) (target as Set<unknown>).add(v);
  };
  const persistent = (pid: unknown): unknown => {
    if (!hooks.persistentLoad) return fail('persistent ids are not allowed here');
    return hooks.persistentLoad(pid);
  };
  /** Globals that made a value, so BUILD can ask them. */
  const madeBy = new WeakMap<object, PyGlobal>();

  for (;;) {
    const at = pos;
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) fail('pickle protocol newer than 5');
        break;
      case 0x95: // FRAME: framing is only a hint for buffered readers
        u64();
        break;
      case 0x2e: // STOP
        return pop();
      case 0x28: // MARK
        marks.push(stack);
        stack = [];
        break;
      case 0x30: // POP
        if (stack.length === 0 && marks.length > 0) popMark();
        else pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;

      // --- constants ---
      case 0x4e:
        stack.push(null);
        break;
      case 0x88:
        stack.push(true);
        break;
      case 0x89:
        stack.push(false);
        break;
      case 0x4a: // BININT
        stack.push(i32());
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x49: {
        // INT (text); "I01"/"I00" are protocol 0 booleans
        const s = line();
        if (s === '01' || s === '00') stack.push(s === '01');
        else if (/^[+-]?\d+$/.test(s)) stack.push(narrowInt(BigInt(s)));
        else fail(`bad INT literal ${JSON.stringify(s)}`);
        break;
      }
      case 0x4c: {
        // LONG (text, trailing L)
        const s = line().replace(/L$/, '');
        if (!/^[+-]?\d+$/.test(s)) fail(`bad LONG literal ${JSON.stringify(s)}`);
        stack.push(narrowInt(BigInt(s)));
        break;
      }
      case 0x8a: // LONG1
        stack.push(decodeLong(bytes(u8())));
        break;
      case 0x8b: {
        // LONG4
        const n = i32();
        if (n < 0) fail('negative LONG4 length');
        stack.push(decodeLong(bytes(n)));
        break;
      }
      case 0x46: {
        // FLOAT (text)
        const v = Number(line());
        if (Number.isNaN(v)) fail('bad FLOAT literal');
        stack.push(v);
        break;
      }
      case 0x47: // BINFLOAT (big-endian double)
        need(8);
        stack.push(view.getFloat64(pos, false));
        pos += 8;
        break;

      // --- strings and bytes ---
      case 0x58: // BINUNICODE
        stack.push(str(bytes(u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(str(bytes(u8())));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(str(bytes(u64())));
        break;
      case 0x56: // UNICODE (raw-unicode-escape)
        stack.push(rawUnicodeEscape(lineBytes()));
        break;
      case 0x53: // STRING (Python 2 str: text)
        stack.push(pyStringLiteral(line(), where));
        break;
      case 0x54: {
        // BINSTRING (Python 2 str, decoded as Latin-1 like encoding='latin1')
        const n = i32();
        if (n < 0) fail('negative BINSTRING length');
        stack.push(latin1.decode(bytes(n)));
        break;
      }
      case 0x55: // SHORT_BINSTRING
        stack.push(latin1.decode(bytes(u8())));
        break;
      case 0x42: // BINBYTES
        stack.push(bytes(u32()).slice());
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(bytes(u8()).slice());
        break;
      case 0x8e: // BINBYTES8
      case 0x96: // BYTEARRAY8
        stack.push(bytes(u64()).slice());
        break;

      // --- containers ---
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x6c: {
        // LIST (popMark() replaces `stack`: take the items before pushing)
        const items = popMark();
        stack.push(items);
        break;
      }
      case 0x29: // EMPTY_TUPLE
        stack.push(new PyTuple());
        break;
      case 0x74: {
        // TUPLE
        const items = popMark();
        stack.push(tuple(items));
        break;
      }
      case 0x85: // TUPLE1
        stack.push(tuple([pop()]));
        break;
      case 0x86: {
        const b = pop();
        const a = pop();
        stack.push(tuple([a, b]));
        break;
      }
      case 0x87: {
        const c = pop();
        const b = pop();
        const a = pop();
        stack.push(tuple([a, b, c]));
        break;
      }
      case 0x7d: // EMPTY_DICT
        stack.push(new PyDict());
        break;
      case 0x64: {
        // DICT
        const d = new PyDict();
        setItems(d, popMark());
        stack.push(d); // after popMark(), which replaces `stack`
        break;
      }
      case 0x8f: // EMPTY_SET
        stack.push(new Set());
        break;
      case 0x91: {
        // FROZENSET
        const items = popMark();
        stack.push(new Set(items));
        break;
      }
      case 0x61: {
        // APPEND
        const v = pop();
        appendItems(top(), [v]);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        appendItems(top(), items);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x90: {
        // ADDITEMS
        const items = popMark();
        addItems(top(), items);
        break;
      }

      // --- memo ---
      case 0x70: {
        // PUT (text index)
        const s = line();
        if (!/^\d+$/.test(s)) fail('bad PUT index');
        memo.set(Number(s), top());
        break;
      }
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x67: {
        // GET (text index)
        const s = line();
        if (!/^\d+$/.test(s)) fail('bad GET index');
        stack.push(memoGet(Number(s)));
        break;
      }
      case 0x68: // BINGET
        stack.push(memoGet(u8()));
        break;
      case 0x6a: // LONG_BINGET
        stack.push(memoGet(u32()));
        break;

      // --- globals and objects: only through the allow-list ---
      case 0x63: {
        // GLOBAL "module\nname\n"
        const module = line();
        const name = line();
        stack.push(global(module, name));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string')
          fail('STACK_GLOBAL needs two strings');
        stack.push(global(module as string, name as string));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const fn = asGlobal(pop(), 'REDUCE');
        if (!(args instanceof PyTuple))
          fail(`REDUCE of ${fn.module}.${fn.name} without an argument tuple`);
        if (!fn.call) fail(`${fn.module}.${fn.name} cannot be called`);
        const value = fn.call!([...(args as PyTuple)]);
        if (value && typeof value === 'object') madeBy.set(value, fn);
        stack.push(value);
        break;
      }
      case 0x62: {
        // BUILD
        const state = pop();
        const target = top();
        const maker = target && typeof target === 'object' ? madeBy.get(target) : undefined;
        if (!maker?.build)
          fail('BUILD (setting object state) is only allowed on rebuilt tensors and ordered dicts');
        maker!.build!(target, state);
        break;
      }
      case 0x51: // BINPERSID
        stack.push(persistent(pop()));
        break;
      case 0x50: // PERSID (text)
        stack.push(persistent(line()));
        break;
      case 0x81: {
        // NEWOBJ: cls.__new__(cls, *args)
        pop();
        const cls = asGlobal(pop(), 'NEWOBJ');
        fail(`refusing to create an instance of ${cls.module}.${cls.name} (NEWOBJ)`);
        break;
      }
      case 0x92: {
        // NEWOBJ_EX
        pop();
        pop();
        const cls = asGlobal(pop(), 'NEWOBJ_EX');
        fail(`refusing to create an instance of ${cls.module}.${cls.name} (NEWOBJ_EX)`);
        break;
      }
      case 0x69: {
        // INST "module\nname\n": refuse like GLOBAL would, naming the class
        const module = line();
        const name = line();
        global(module, name);
        fail(`refusing to create an instance of ${module}.${name} (INST)`);
        break;
      }
      case 0x6f: {
        // OBJ
        const items = popMark();
        const cls = asGlobal(items[0], 'OBJ');
        fail(`refusing to create an instance of ${cls.module}.${cls.name} (OBJ)`);
        break;
      }
      default: {
        const name = OPNAMES[op];
        fail(
          name
            ? `unsupported pickle opcode ${name} (0x${op.toString(16)}) at offset ${at}`
            : `unknown pickle opcode 0x${op.toString(16).padStart(2, '0')} at offset ${at}: not a pickle, or a corrupt one`,
        );
      }
    }
  }
}
