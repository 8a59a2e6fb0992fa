/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/**
 * The `dif-fuse serve` page: pick or drop an infrared and a visible image (or the sample
 * pair), post them to /api/jobs, poll the job for its place in the queue and its progress,
 * then show the fused image beside its sources with a before/after slider, the metrics of the
 * method and the baseline, and a download link. A pair of different sizes (or one the user
 * says is misaligned) gets an align step first: POST /api/align returns the transform and a
 * check image to look at, and the fusion then sends that transform. Plain DOM, bundled by the
 * fuser's build.
 */

type Role = 'ir' | 'vis';

interface Info {
  methods: string[];
  baselines: string[];
  defaultBaseline: string;
  limits: { maxUploadBytes: number; maxPixels: number };
  waiting: number;
}

interface JobStatus {
  id: string;
  state: 'queued' | 'running' | 'done' | 'error';
  method: string;
  baseline: string | null;
  width: number;
  height: number;
  place: number;
  progress: { done: number; total: number };
  elapsedMs: number;
  estimateMs: number | null;
  ms: number | null;
  metrics: Record<string, Record<string, number>> | null;
  aligned: string | null;
  error: string | null;
}

interface Alignment {
  visToIr: number[];
  transform: string;
  scoreBefore: number | null;
  scoreAfter: number | null;
  coverage: number;
  irSize: [number, number];
  visSize: [number, number];
  check: string;
}

/** The metrics the page shows, in order: [key, label, higher is better, hint]. */
const SHOWN: [string, string, boolean, string][] = [
  ['EN', 'EN', true, 'entropy'],
  ['SD', 'SD', true, 'contrast'],
  ['SF', 'SF', true, 'spatial frequency'],
  ['AG', 'AG', true, 'average gradient'],
  ['MI', 'MI', true, 'mutual information'],
  ['SCD', 'SCD', true, 'correlation of differences'],
  ['VIF', 'VIF', true, 'visual information fidelity'],
  ['Qabf', 'Qabf', true, 'edge transfer'],
  ['SSIM', 'SSIM', true, 'structural similarity'],
  ['DeltaE', 'ΔE', false, 'colour error vs visible'],
];

const LABELS: Record<string, string> = {
  model: 'Dif-Fusion model',
  average: 'Average',
  max: 'Maximum',
  'ycbcr-average': 'YCbCr average',
  'ycbcr-max': 'YCbCr maximum',
};

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

const files: Partial<Record<Role, File>> = {};
const previews: Partial<Record<Role, string>> = {};
const sizes: Partial<Record<Role, { w: number; h: number } | null>> = {};
let against: 'vis' | 'ir' | 'baseline' = 'vis';
let current: { fused: string; baseline: string | null; visible: string | null } | null = null;
/** The accepted align step of the current pair, and whether the user asked for one. */
let alignment: Alignment | null = null;
let alignWanted = false;
let aligning = false;
let busy = false;
let download: { href: string; name: string } | null = null;

function label(m: string): string {
  return LABELS[m] ?? m;
}

function fmtBytes(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${Math.max(1, Math.round(n / 1e3))} kB`;
}

function showError(message: string | null, title = 'Could not fuse'): void {
  const box = $('error');
  box.hidden = !message;
  box.textContent = '';
  if (!message) return;
  const b = document.createElement('b');
  b.textContent = title;
  box.append(b, document.createTextNode(message));
}

/**
 * Marks the result on screen as not of the images now picked (`why`), or clears the mark
 * (null). The result stays for comparison, dimmed, under a note saying what it is.
 */
function markStale(why: string | null): void {
  const note = $('stale-note');
  const stale = Boolean(why && current);
  note.hidden = !stale;
  note.textContent = stale ? (why as string) : '';
  document.querySelector('.result')?.classList.toggle('stale', stale);
}

/** Says `text` to screen readers (the polite status region), once per change. */
function announce(text: string): void {
  const el = $('announce');
  if (el.textContent !== text) el.textContent = text;
}

function updateFuseButton(): void {
  const ready = Boolean(files.ir && files.vis);
  const si = sizes.ir;
  const sv = sizes.vis;
  const mismatch = Boolean(si && sv && (si.w !== sv.w || si.h !== sv.h));
  const note = $('pair-note');
  note.hidden = !mismatch || alignment !== null;
  if (mismatch && si && sv)
    note.textContent = `The images differ in size (${si.w}×${si.h} vs ${sv.w}×${sv.h}): align them before fusing.`;
  const needAlign = ready && (mismatch || alignWanted);
  $('align').hidden = !needAlign;
  $('align-toggle').hidden = !ready || needAlign;
  $('align-why').textContent = mismatch
    ? 'The visible image is warped onto the infrared grid; the fused image has the infrared size, and where the visible camera saw nothing it shows the infrared alone.'
    : 'For two cameras that do not line up exactly: the visible image is warped onto the infrared one.';
  $<HTMLButtonElement>('align-run').disabled = !ready || aligning || busy;
  $<HTMLButtonElement>('fuse').disabled = !ready || busy || aligning || (needAlign && !alignment);
}

function setAlignment(a: Alignment | null): void {
  alignment = a;
  const box = $('align-result');
  box.hidden = !a;
  box.classList.toggle('ok', Boolean(a));
  if (a) {
    $<HTMLImageElement>('align-check').src = a.check;
    const text = $('align-text');
    text.textContent = '';
    const b = document.createElement('b');
    b.textContent = a.transform;
    const edges =
      a.scoreBefore !== null && a.scoreAfter !== null
        ? `; edge correlation ${a.scoreBefore.toFixed(2)} → ${a.scoreAfter.toFixed(2)}`
        : '';
    text.append(
      b,
      document.createTextNode(
        `${edges}; the visible image covers ${Math.round(a.coverage * 100)}% of the infrared frame. Check the squares: edges should run on straight across them. Then press Fuse.`,
      ),
    );
  }
  updateFuseButton();
}

async function align(): Promise<void> {
  if (!files.ir || !files.vis || aligning) return;
  aligning = true;
  setAlignment(null);
  showError(null);
  const run = $<HTMLButtonElement>('align-run');
  run.textContent = 'Aligning…';
  const form = new FormData();
  form.append('mode', $<HTMLSelectElement>('align-mode').value);
  form.append('ir', files.ir, files.ir.name);
  form.append('vis', files.vis, files.vis.name);
  try {
    const res = await fetch('/api/align', { method: 'POST', body: form });
    if (!res.ok) throw new Error(await readError(res));
    aligning = false;
    setAlignment((await res.json()) as Alignment);
  } catch (err) {
    showError(err instanceof Error ? err.message : String(err), 'Could not align');
  } finally {
    aligning = false;
    run.textContent = 'Align';
    updateFuseButton();
  }
}

/** Shows a picked file in its drop zone (thumbnail, name, size); non-images are still sent, for the server to judge. */
function setFile(role: Role, file: File): void {
  files[role] = file;
  const zone = $(`drop-${role}`);
  const img = zone.querySelector<HTMLImageElement>('.thumb')!;
  const hint = zone.querySelector<HTMLElement>('.hint')!;
  const meta = zone.querySelector<HTMLElement>('.drop-meta')!;
  if (previews[role]) URL.revokeObjectURL(previews[role]!);
  const url = URL.createObjectURL(file);
  previews[role] = url;
  zone.classList.add('has');
  meta.classList.remove('bad');
  meta.textContent = `${file.name} · ${fmtBytes(file.size)}`;
  meta.title = file.name;
  sizes[role] = null;
  img.onload = () => {
    sizes[role] = { w: img.naturalWidth, h: img.naturalHeight };
    meta.textContent = `${file.name} · ${img.naturalWidth}×${img.naturalHeight}`;
    img.hidden = false;
    hint.hidden = true;
    updateFuseButton();
  };
  img.onerror = () => {
    // TIFF and 16-bit files may not preview in a browser; the server decodes them anyway.
    img.hidden = true;
    hint.hidden = false;
    hint.textContent = 'no preview';
    meta.textContent = `${file.name} · ${fmtBytes(file.size)} · no preview`;
    updateFuseButton();
  };
  img.src = url;
  showError(null);
  alignWanted = false;
  setAlignment(null);
  markStale(
    `Previous result: not of the ${role === 'ir' ? 'infrared' : 'visible'} image just picked; press Fuse for a new one.`,
  );
  updateFuseButton();
}

function guessRole(f: File, fallback: Role): Role {
  if (/(^|[^a-z])(ir|lwir|thermal|infra)/i.test(f.name)) return 'ir';
  if (/(^|[^a-z])(vi|vis|rgb|visible|colou?r)/i.test(f.name)) return 'vis';
  return fallback;
}

function wireDrop(role: Role): void {
  const zone = $(`drop-${role}`);
  const input = $<HTMLInputElement>(`file-${role}`);
  input.addEventListener('change', () => {
    if (input.files?.[0]) setFile(role, input.files[0]);
  });
  zone.addEventListener('dragover', (e) => {
    e.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    const list = [...(e.dataTransfer?.files ?? [])];
    if (list.length >= 2) {
      // Two files dropped at once: sorted by name hints (ir, thermal / vi, rgb), else in order.
      const a = guessRole(list[0], role);
      setFile(a, list[0]);
      setFile(a === 'ir' ? 'vis' : 'ir', list[1]);
    } else if (list[0]) setFile(role, list[0]);
  });
}

async function useSample(): Promise<void> {
  for (const [role, name] of [
    ['ir', 'ir.png'],
    ['vis', 'vi.png'],
  ] as const) {
    const res = await fetch(`/samples/${name}`);
    const blob = await res.blob();
    setFile(role, new File([blob], `sample-${name}`, { type: 'image/png' }));
  }
}

function setProgress(s: JobStatus | null, text: string): void {
  const box = $('progress');
  const bar = box.querySelector<HTMLElement>('.bar')!;
  const fill = $('progress-fill');
  box.hidden = false;
  $('progress-label').textContent = text;
  $('progress-time').textContent =
    s && s.state === 'running' ? `${(s.elapsedMs / 1000).toFixed(1)} s` : '';
  bar.classList.toggle('queued', s?.state === 'queued');
  let frac: number | null = null;
  if (s?.state === 'running') {
    if (s.progress.total > 1) frac = s.progress.done / s.progress.total;
    if (s.estimateMs) frac = Math.max(frac ?? 0, Math.min(0.95, s.elapsedMs / s.estimateMs));
  }
  if (s?.state === 'done') frac = 1;
  bar.classList.toggle('indeterminate', s?.state === 'running' && frac === null);
  const pct = Math.round((frac ?? 0) * 100);
  fill.style.setProperty('--w', `${pct}%`);
  if (frac === null) bar.removeAttribute('aria-valuenow');
  else bar.setAttribute('aria-valuenow', String(pct));
  // Screen readers hear each change of state and place, and the tiles by quarters, not
  // every poll: "Fusing with Dif-Fusion model, 50%".
  if (s?.state === 'running') {
    const quarter = frac === null ? '' : `, ${Math.floor(frac * 4) * 25}%`;
    announce(`Fusing with ${label(s.method)}${quarter}`);
  } else announce(text);
}

function ordinal(n: number): string {
  const s = ['th', 'st', 'nd', 'rd'];
  const v = n % 100;
  return `${n}${s[(v - 20) % 10] || s[v] || s[0]}`;
}

function statusText(s: JobStatus): string {
  if (s.state === 'queued')
    return s.place <= 1 ? 'In the queue: next' : `In the queue: ${ordinal(s.place)} in line`;
  if (s.state === 'running') {
    const tiles = s.progress.total > 1 ? ` · tile ${s.progress.done}/${s.progress.total}` : '';
    return `Fusing with ${label(s.method)}${tiles}`;
  }
  if (s.state === 'done') return `Done in ${((s.ms ?? 0) / 1000).toFixed(2)} s`;
  return 'Failed';
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function readError(res: Response): Promise<string> {
  try {
    const j = (await res.json()) as { error?: string };
    return j.error ?? `HTTP ${res.status}`;
  } catch {
    return `HTTP ${res.status} ${res.statusText}`;
  }
}

async function fuse(): Promise<void> {
  if (!files.ir || !files.vis || busy) return;
  busy = true;
  updateFuseButton();
  showError(null);
  const method = $<HTMLSelectElement>('method').value;
  const baseline = $<HTMLSelectElement>('baseline').value;
  const form = new FormData();
  form.append('method', method);
  form.append('baseline', baseline);
  if (alignment) form.append('align', JSON.stringify(alignment.visToIr));
  form.append('ir', files.ir, files.ir.name);
  form.append('vis', files.vis, files.vis.name);
  markStale('Previous result: fusing the new pair…');
  setProgress(null, 'Uploading…');
  try {
    const res = await fetch('/api/jobs', { method: 'POST', body: form });
    if (!res.ok) throw new Error(await readError(res));
    const { id } = (await res.json()) as { id: string };
    let s: JobStatus;
    for (;;) {
      const r = await fetch(`/api/jobs/${id}`);
      if (!r.ok) throw new Error(await readError(r));
      s = (await r.json()) as JobStatus;
      setProgress(s, statusText(s));
      if (s.state === 'done' || s.state === 'error') break;
      await sleep(200);
    }
    if (s.state === 'error') throw new Error(s.error ?? 'the fusion failed');
    await showResult(s);
  } catch (err) {
    $('progress').hidden = true;
    const message = err instanceof Error ? err.message : String(err);
    showError(message); // role="alert": read out at once
    announce('');
    markStale(
      'Previous result: the last fusion failed (see the error), so this is not of the images above.',
    );
  } finally {
    busy = false;
    updateFuseButton();
    refreshInfo();
  }
}

function loadImg(img: HTMLImageElement, src: string): Promise<void> {
  return new Promise((resolve) => {
    img.onload = () => resolve();
    img.onerror = () => resolve();
    img.src = src;
  });
}

function applySlider(): void {
  if (!current) return;
  const under = $<HTMLImageElement>('slider-under');
  const src =
    against === 'ir'
      ? previews.ir
      : against === 'baseline' && current.baseline
        ? current.baseline
        : (current.visible ?? previews.vis);
  under.src = src ?? '';
  $('tag-right').textContent =
    against === 'ir' ? 'infrared' : against === 'baseline' ? 'baseline' : 'visible';
  for (const b of document.querySelectorAll<HTMLButtonElement>('.compare button'))
    b.classList.toggle('on', b.dataset.against === against);
}

async function showResult(s: JobStatus): Promise<void> {
  const fused = `/api/jobs/${s.id}/fused.png`;
  const baseline = s.baseline && s.baseline !== s.method ? `/api/jobs/${s.id}/baseline.png` : null;
  // An aligned pair: the visible image on the infrared grid, as it was fused.
  const visible = s.aligned ? `/api/jobs/${s.id}/visible.png` : null;
  current = { fused, baseline, visible };
  markStale(null);
  $('empty').hidden = true;
  $('slider').hidden = false;
  $('slider').style.setProperty('--ar', String(s.width / s.height));
  $('strip').hidden = false;
  $('bottom').hidden = false;
  const over = $<HTMLImageElement>('slider-over');
  await Promise.all([
    loadImg(over, fused),
    loadImg($<HTMLImageElement>('img-fused'), fused),
    loadImg($<HTMLImageElement>('img-ir'), previews.ir ?? ''),
    loadImg($<HTMLImageElement>('img-vis'), visible ?? previews.vis ?? ''),
    baseline ? loadImg($<HTMLImageElement>('img-baseline'), baseline) : Promise.resolve(),
  ]);
  $('img-baseline').closest('figure')!.hidden = !baseline;
  $<HTMLButtonElement>('btn-baseline').disabled = !baseline;
  if (!baseline && against === 'baseline') against = 'vis';
  $('cap-fused').textContent = `Fused · ${label(s.method)}`;
  $('cap-baseline').textContent = `Baseline · ${label(s.baseline ?? '')}`;
  $('tag-left').textContent = `fused (${label(s.method)})`;
  applySlider();
  const wins = fillMetrics(s);
  const stem = (files.vis?.name ?? 'pair').replace(/\.[^.]*$/, '');
  download = { href: fused, name: `${stem}-fused-${s.method}.png` };
  $<HTMLButtonElement>('download').disabled = false;
  $('summary').innerHTML = '';
  const sum = $('summary');
  const b = document.createElement('b');
  b.textContent = `${s.width}×${s.height}`;
  sum.append(
    b,
    document.createTextNode(
      ` fused with ${label(s.method)} in ${((s.ms ?? 0) / 1000).toFixed(2)} s.`,
    ),
  );
  if (s.aligned) {
    const p = document.createElement('p');
    p.className = 'aligned-note';
    p.textContent = `Aligned: ${s.aligned}.`;
    sum.append(p);
  }
  if (wins !== null && s.baseline) {
    const p = document.createElement('p');
    const w = document.createElement('b');
    w.textContent = `${wins} of ${SHOWN.length}`;
    p.append(
      `${label(s.method)} is better than ${label(s.baseline)} on `,
      w,
      ' metrics (green dot). ↑: higher is better, ↓: lower.',
    );
    sum.append(p);
  }
}

/** Fills the metrics table; returns how many rows the method wins against the baseline (null without one). */
function fillMetrics(s: JobStatus): number | null {
  const body = $('metrics').querySelector('tbody')!;
  body.textContent = '';
  const m = s.metrics?.[s.method] ?? {};
  const base = s.baseline && s.baseline !== s.method ? (s.metrics?.[s.baseline] ?? null) : null;
  $('col-method').textContent = label(s.method);
  $('col-baseline').textContent = base ? label(s.baseline!) : '';
  $('col-baseline').hidden = !base;
  let wins = 0;
  for (const [key, name, higher, hint] of SHOWN) {
    const tr = document.createElement('tr');
    tr.dataset.metric = key;
    const th = document.createElement('td');
    th.textContent = name;
    th.title = hint;
    const small = document.createElement('small');
    small.textContent = hint;
    th.append(small);
    const a = m[key];
    const tdA = document.createElement('td');
    tdA.textContent = Number.isFinite(a) ? a.toFixed(3) : '–';
    tr.append(th, tdA);
    if (base) {
      const b = base[key];
      const tdB = document.createElement('td');
      tdB.textContent = Number.isFinite(b) ? b.toFixed(3) : '–';
      if (Number.isFinite(a) && Number.isFinite(b) && a !== b) {
        const aBetter = higher ? a > b : a < b;
        (aBetter ? tdA : tdB).classList.add('best');
        if (aBetter) wins++;
      }
      tr.append(tdB);
    }
    const dir = document.createElement('td');
    dir.className = 'dir';
    dir.textContent = higher ? '↑' : '↓';
    dir.title = higher ? 'higher is better' : 'lower is better';
    tr.append(dir);
    body.append(tr);
  }
  return base ? wins : null;
}

async function refreshInfo(): Promise<Info | null> {
  const el = $('server-status');
  try {
    const res = await fetch('/api/info');
    const info = (await res.json()) as Info;
    el.className = 'server ok';
    el.textContent =
      info.waiting > 0 ? `server busy · ${info.waiting} waiting` : 'server ready · queue empty';
    return info;
  } catch {
    el.className = 'server down';
    el.textContent = 'server unreachable';
    return null;
  }
}

async function init(): Promise<void> {
  wireDrop('ir');
  wireDrop('vis');
  // Dropping files outside a zone must not navigate away from the page.
  window.addEventListener('dragover', (e) => e.preventDefault());
  window.addEventListener('drop', (e) => e.preventDefault());
  $('use-sample').addEventListener('click', () => {
    useSample().catch((e) => showError(String(e), 'Could not load the sample pair'));
  });
  $('fuse').addEventListener('click', () => {
    fuse();
  });
  $('align-run').addEventListener('click', () => {
    align();
  });
  $('align-toggle').addEventListener('click', () => {
    alignWanted = true;
    updateFuseButton();
  });
  $('align-mode').addEventListener('change', () => setAlignment(null));
  $('download').addEventListener('click', () => {
    if (!download) return;
    const a = document.createElement('a');
    a.href = download.href;
    a.download = download.name;
    document.body.append(a);
    a.click();
    a.remove();
  });
  const range = $<HTMLInputElement>('slider-range');
  range.addEventListener('input', () => {
    $('slider').style.setProperty('--pos', `${range.value}%`);
  });
  for (const b of document.querySelectorAll<HTMLButtonElement>('.compare button')) {
    if (b.dataset.against === 'baseline') b.id = 'btn-baseline';
    b.addEventListener('click', () => {
      against = b.dataset.against as typeof against;
      applySlider();
    });
  }
  const info = await refreshInfo();
  const methodSel = $<HTMLSelectElement>('method');
  const baseSel = $<HTMLSelectElement>('baseline');
  const methods = info?.methods ?? ['model', 'average', 'max', 'ycbcr-average', 'ycbcr-max'];
  for (const m of methods) methodSel.add(new Option(label(m), m));
  baseSel.add(new Option('no baseline', 'none'));
  for (const m of methods) baseSel.add(new Option(label(m), m));
  baseSel.value = info?.defaultBaseline ?? 'ycbcr-max';
  if (info)
    $('limits').textContent =
      `Up to ${fmtBytes(info.limits.maxUploadBytes)} and ${(info.limits.maxPixels / 1e6).toFixed(1)} MP per image. Uploads stay in the server's memory, never on disk.`;
  updateFuseButton();
  // The queue length in the header stays current while the page is open.
  setInterval(() => {
    if (document.visibilityState === 'visible') refreshInfo();
  }, 3000);
}

init();
