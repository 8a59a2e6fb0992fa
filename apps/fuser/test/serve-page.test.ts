/**
 * The `dif-fuse serve` page in a real browser: Debian's Chromium driven by playwright-core
 * (`.ci/run` installs it with apt-get; without it these tests skip and say so).
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { evaluateFusion } from '@dif-fusion/metrics';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { OpenedFuser } from '../src/fuse';
import { tmp, writeScenePair } from './helpers';
import { decodePng, form, type Running, SAMPLES, startServer } from './serve-helpers';

const CHROMIUM = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].find(
  (p): p is string => Boolean(p && existsSync(p)),
);
if (!CHROMIUM)
  console.warn(
    'serve-page tests skipped: no Chromium (apt-get install -y chromium, or set CHROMIUM_PATH)',
  );

/** Screenshots go to $DIF_FUSION_SCREENSHOTS (kept) or a temporary folder. */
const SHOTS = process.env.DIF_FUSION_SCREENSHOTS ?? tmp('dif-serve-shots-');

// While `hold` is set, model runs wait: the page's job then has a known place in the queue.
const probe = vi.hoisted(() => ({ hold: null as Promise<void> | null }));
vi.mock('../src/fuse', async (importOriginal) => {
  const real = await importOriginal<typeof import('../src/fuse')>();
  return {
    ...real,
    openFuser: async (opts: Parameters<typeof real.openFuser>[0]): Promise<OpenedFuser> => {
      const opened = await real.openFuser(opts);
      const run = opened.fuser.run;
      opened.fuser.run = async (...args) => {
        if (opened.method === 'model' && probe.hold) await probe.hold;
        return run(...args);
      };
      return opened;
    },
  };
});

const SHOWN = ['EN', 'SD', 'SF', 'AG', 'MI', 'SCD', 'VIF', 'Qabf', 'SSIM', 'DeltaE'] as const;
const LOWER_BETTER = new Set(['DeltaE']);

describe.skipIf(!CHROMIUM)('the page in Chromium', () => {
  let server: Running;
  let context: BrowserContext;
  let profile: string;

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    server = await startServer();
    profile = tmp('dif-serve-profile-'); // a fresh profile for every run
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--no-first-run',
      ],
      viewport: { width: 1280, height: 900 },
      acceptDownloads: true,
    });
  });

  afterAll(async () => {
    await context?.close();
    await server?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  async function open(): Promise<Page> {
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(e.message));
    await page.goto(server.url);
    await page.waitForSelector('#server-status.ok');
    expect(problems).toEqual([]);
    return page;
  }

  it('fuses an uploaded pair: queue place, result size, metrics of model and baseline, slider, download, layout', async () => {
    const page = await open();
    await page.setInputFiles('#file-ir', join(SAMPLES, 'ir.png'));
    await page.setInputFiles('#file-vis', join(SAMPLES, 'vi.png'));
    await page.waitForFunction(() =>
      document.querySelector('#drop-vis .drop-meta')?.textContent?.includes('320×240'),
    );
    await page.selectOption('#method', 'model');
    expect(await page.inputValue('#baseline')).toBe('ycbcr-max');

    // Another request holds the model: the page's job waits, next in line.
    let release = () => {};
    probe.hold = new Promise<void>((r) => {
      release = r;
    });
    const other = fetch(`${server.url}/api/fuse`, {
      method: 'POST',
      body: form(
        { ir: join(SAMPLES, 'ir.png'), vis: join(SAMPLES, 'vi.png') },
        { method: 'model' },
      ),
    });
    await expect.poll(() => server.engine.lane('model').busy).toBe(true);
    await page.click('#fuse');
    await page.waitForFunction(
      () => document.querySelector('#progress-label')?.textContent === 'In the queue: next',
    );
    await page.screenshot({ path: join(SHOTS, 'serve-queued.png') });
    probe.hold = null;
    release();
    expect((await other).status).toBe(200);
    await page.waitForSelector('#bottom:not([hidden])', { timeout: 90_000 });
    expect(await page.textContent('#progress-label')).toMatch(/^Done in \d+\.\d\d s$/);

    // The fused image at the sources' size, beside them.
    const size = (sel: string) =>
      page.$eval(sel, (img) => [
        (img as HTMLImageElement).naturalWidth,
        (img as HTMLImageElement).naturalHeight,
      ]);
    for (const sel of ['#slider-over', '#img-fused', '#img-baseline', '#img-ir', '#img-vis'])
      expect(await size(sel), sel).toEqual([320, 240]);

    // The metrics shown are the metrics package's values of the served images.
    const fusedUrl = await page.getAttribute('#img-fused', 'src');
    const baseUrl = await page.getAttribute('#img-baseline', 'src');
    const fetchPng = async (u: string | null) =>
      decodePng(new Uint8Array(await (await fetch(new URL(u!, server.url))).arrayBuffer()));
    const ir = await decodePng(readFileSync(join(SAMPLES, 'ir.png')));
    const vi = await decodePng(readFileSync(join(SAMPLES, 'vi.png')));
    const fused = await fetchPng(fusedUrl);
    const want = evaluateFusion(ir, vi, fused);
    const wantBase = evaluateFusion(ir, vi, await fetchPng(baseUrl));
    const rows = await page.$$eval('#metrics tbody tr', (trs) =>
      trs.map((tr) => ({
        key: (tr as HTMLElement).dataset.metric,
        cells: [...tr.querySelectorAll('td')].map((td) => td.textContent),
        best: [...tr.querySelectorAll('td')].map((td) => td.classList.contains('best')),
      })),
    );
    expect(rows.map((r) => r.key)).toEqual([...SHOWN]);
    expect(await page.textContent('#col-method')).toBe('Dif-Fusion model');
    expect(await page.textContent('#col-baseline')).toBe('YCbCr maximum');
    for (const r of rows) {
      const k = r.key as (typeof SHOWN)[number];
      expect(r.cells[1], k).toBe(want[k].toFixed(3));
      expect(r.cells[2], k).toBe(wantBase[k].toFixed(3));
      const modelBetter = LOWER_BETTER.has(k) ? want[k] < wantBase[k] : want[k] > wantBase[k];
      expect(r.best.slice(1, 3), k).toEqual([modelBetter, !modelBetter]);
    }

    // The slider moves; the download is the fused PNG.
    await page.locator('#slider-range').fill('25');
    expect(
      await page.$eval('#slider', (el) => (el as HTMLElement).style.getPropertyValue('--pos')),
    ).toBe('25%');
    await page.locator('#slider-range').fill('50');
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
    expect(download.suggestedFilename()).toBe('vi-fused-model.png');
    const wins = rows.filter((r) => r.best[1]).length;
    expect(await page.textContent('#summary')).toBe(
      `320×240 fused with Dif-Fusion model in ${(await page.textContent('#progress-label'))!.match(/\d+\.\d\d/)![0]} s.Dif-Fusion model is better than YCbCr maximum on ${wins} of 10 metrics (green dot). ↑: higher is better, ↓: lower.`,
    );
    const saved = await decodePng(readFileSync((await download.path())!));
    expect(Buffer.from(saved.data).equals(Buffer.from(fused.data))).toBe(true);

    // The screenshot against the expected layout: controls left, result right; the slider
    // shows a 4:3 image; the four thumbnails in one row; the metrics and the download below.
    const shot = join(SHOTS, 'serve-result.png');
    const png = await decodePng(await page.screenshot({ path: shot }));
    expect([png.width, png.height]).toEqual([1280, 900]);
    const box = async (sel: string) => (await page.locator(sel).boundingBox())!;
    const controls = await box('.controls');
    const result = await box('.result');
    expect(controls.x + controls.width).toBeLessThan(result.x);
    expect(Math.abs(controls.y - result.y)).toBeLessThan(2);
    expect(controls.width).toBeCloseTo(340, -1);
    const slider = await box('#slider');
    expect(slider.width / slider.height).toBeCloseTo(320 / 240, 1);
    expect(slider.x).toBeGreaterThanOrEqual(result.x);
    expect(slider.x + slider.width).toBeLessThanOrEqual(result.x + result.width);
    const figs = await page
      .locator('.strip figure')
      .evaluateAll((els) => els.map((e) => e.getBoundingClientRect().toJSON() as DOMRect));
    expect(figs).toHaveLength(4);
    for (let i = 1; i < 4; i++) {
      expect(Math.abs(figs[i].y - figs[0].y)).toBeLessThan(1);
      expect(figs[i].x).toBeGreaterThan(figs[i - 1].x + figs[i - 1].width);
    }
    const table = await box('#metrics');
    const dl = await box('#download');
    expect(table.y).toBeGreaterThan(figs[0].y + figs[0].height);
    expect(dl.y + dl.height).toBeLessThan(slider.y);
    expect(dl.x + dl.width).toBeLessThanOrEqual(result.x + result.width);
    expect(dl.x).toBeGreaterThan(result.x + result.width / 2);
    // The fused image is drawn where the slider is (not the page's background colour).
    const cx = Math.round(slider.x + slider.width * 0.25);
    const cy = Math.round(slider.y + slider.height * 0.5);
    const at = (x: number, y: number) => [
      ...png.data.subarray(
        (y * png.width + x) * png.channels,
        (y * png.width + x) * png.channels + 3,
      ),
    ];
    let differs = 0;
    for (let dy = -20; dy <= 20; dy += 5)
      for (let dx = -20; dx <= 20; dx += 5)
        if (at(cx + dx, cy + dy).join() !== at(5, 895).join()) differs++;
    expect(differs).toBeGreaterThan(60);
    await page.screenshot({ path: join(SHOTS, 'serve-result-full.png'), fullPage: true });
    await page.close();
  });

  it('a pair of different sizes gets the align step: check image, then the fusion on the infrared grid', async () => {
    const d = tmp('dif-serve-page-align-');
    await writeScenePair(join(d, 'ir.png'), join(d, 'vi.png'));
    const page = await open();
    await page.setInputFiles('#file-ir', join(d, 'ir.png'));
    await page.setInputFiles('#file-vis', join(d, 'vi.png'));
    await page.waitForFunction(() =>
      document.querySelector('#drop-vis .drop-meta')?.textContent?.includes('240×200'),
    );
    expect(await page.textContent('#pair-note')).toBe(
      'The images differ in size (160×128 vs 240×200): align them before fusing.',
    );
    expect(await page.isVisible('#align')).toBe(true);
    expect(await page.isEnabled('#fuse')).toBe(false);
    await page.selectOption('#method', 'average');
    await page.selectOption('#baseline', 'none');
    await page.click('#align-run');
    await page.waitForSelector('#align-result:not([hidden])', { timeout: 60_000 });
    const size = (sel: string) =>
      page.$eval(sel, (img) => [
        (img as HTMLImageElement).naturalWidth,
        (img as HTMLImageElement).naturalHeight,
      ]);
    expect(await size('#align-check')).toEqual([160, 128]);
    expect(await page.textContent('#align-text')).toMatch(
      /^scale 0\.\d{3}, rotation .* deg, shift \(.*\) px; edge correlation [\d.]+ → [\d.]+; the visible image covers \d+% of the infrared frame/,
    );
    expect(await page.isEnabled('#fuse')).toBe(true);
    // The align step stays inside its panel.
    const panel = await page.$eval('.controls', (e) => e.getBoundingClientRect().right);
    for (const sel of ['#align', '#align-mode', '#align-check']) {
      const right = await page.$eval(sel, (e) => e.getBoundingClientRect().right);
      expect(right, sel).toBeLessThanOrEqual(panel);
    }
    await page.screenshot({ path: join(SHOTS, 'serve-align.png'), fullPage: true });
    await page.click('#fuse');
    await page.waitForSelector('#bottom:not([hidden])', { timeout: 90_000 });
    for (const sel of ['#img-fused', '#img-vis', '#img-ir'])
      expect(await size(sel), sel).toEqual([160, 128]);
    expect(await page.textContent('#summary')).toMatch(
      /Aligned: aligned with the given transform; visible warped onto the 160x128 infrared grid/,
    );
    await page.screenshot({ path: join(SHOTS, 'serve-align-result.png'), fullPage: true });
    // A new file clears the alignment: the step must be done again for the new pair.
    copyFileSync(join(d, 'vi.png'), join(d, 'vi-2.png'));
    await page.setInputFiles('#file-vis', join(d, 'vi-2.png'));
    await page.waitForSelector('#align-result[hidden]', { state: 'attached' });
    expect(await page.isEnabled('#fuse')).toBe(false);
    await page.close();
  });

  it('marks the previous result when the images change or their fusion fails; announces progress', async () => {
    const page = await open();
    await page.setInputFiles('#file-ir', join(SAMPLES, 'ir.png'));
    await page.setInputFiles('#file-vis', join(SAMPLES, 'vi.png'));
    await page.selectOption('#method', 'max');
    await page.selectOption('#baseline', 'none');
    await page.click('#fuse');
    await page.waitForSelector('#bottom:not([hidden])', { timeout: 60_000 });
    // screen readers heard the end: the status region (polite) holds it
    expect(await page.getAttribute('#announce', 'aria-live')).toBe('polite');
    expect(await page.textContent('#announce')).toMatch(/^Done in \d+\.\d\d s$/);
    expect(await page.getAttribute('#progress-bar', 'aria-valuenow')).toBe('100');
    expect(await page.isHidden('#stale-note')).toBe(true);
    // a new infrared file: the result below is marked as the previous one, dimmed
    await page.setInputFiles('#file-ir', {
      name: 'notes.txt',
      mimeType: 'text/plain',
      buffer: Buffer.from('not an image at all'),
    });
    expect(await page.textContent('#stale-note')).toBe(
      'Previous result: not of the infrared image just picked; press Fuse for a new one.',
    );
    expect(await page.$eval('.result', (e) => e.classList.contains('stale'))).toBe(true);
    // its fusion fails: the error, and the result still marked (not shown as this pair's)
    await page.click('#fuse');
    await page.waitForSelector('#error:not([hidden])');
    expect(await page.textContent('#stale-note')).toBe(
      'Previous result: the last fusion failed (see the error), so this is not of the images above.',
    );
    expect(await page.isVisible('#stale-note')).toBe(true);
    expect(await page.$eval('.stage', (e) => getComputedStyle(e).opacity)).toBe('0.4');
    await page.screenshot({ path: join(SHOTS, 'serve-stale.png') });
    // a good pair again: the mark goes with the new result
    await page.setInputFiles('#file-ir', join(SAMPLES, 'ir.png'));
    await page.click('#fuse');
    await page.waitForFunction(
      () => document.querySelector('#stale-note')?.hasAttribute('hidden'),
      undefined,
      { timeout: 60_000 },
    );
    expect(await page.$eval('.result', (e) => e.classList.contains('stale'))).toBe(false);
    await page.close();
  });

  it('shows a clear error, no stack, for a file that is not an image', async () => {
    const page = await open();
    await page.setInputFiles('#file-ir', {
      name: 'notes.txt',
      mimeType: 'text/plain',
      buffer: Buffer.from('not an image at all'),
    });
    await page.setInputFiles('#file-vis', join(SAMPLES, 'vi.png'));
    await page.click('#fuse');
    await page.waitForSelector('#error:not([hidden])');
    const text = await page.textContent('#error');
    expect(text).toBe(
      'Could not fusenotes.txt (infrared): unsupported or unrecognised image format (expected PNG, JPEG, TIFF, WebP or BMP)',
    );
    expect(await page.isHidden('#progress')).toBe(true);
    expect(await page.isVisible('#empty')).toBe(true);
    expect(await page.isEnabled('#fuse')).toBe(true);
    await page.screenshot({ path: join(SHOTS, 'serve-error.png') });
    // The shipped sample pair replaces both files.
    await page.click('#use-sample');
    for (const [role, name] of [
      ['ir', 'sample-ir.png'],
      ['vis', 'sample-vi.png'],
    ])
      await page.waitForFunction(
        ([r, n]) =>
          document.querySelector(`#drop-${r} .drop-meta`)?.textContent === `${n} · 320×240`,
        [role, name],
      );
    expect(await page.isHidden('#error')).toBe(true);
    await page.close();
  });
});
