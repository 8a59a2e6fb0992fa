import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { golden, hasGolden, noteSkip } from '../../../test/shared';
import { evaluateFusion, type MetricName, nabfIntended, toGray } from '../src/index';
import { readExpected, readImage } from './golden-util';

noteSkip(hasGolden, 'golden');

const REL = 1e-3;

describe.skipIf(!hasGolden)(
  'golden values of the Tang et al. toolkit (../shared/golden/metrics)',
  () => {
    const dir = golden('metrics');
    const rows = hasGolden ? readExpected(dir) : [];

    it.each(rows.map((r) => [r.label, r] as const))('%s', async (_label, row) => {
      const ir = await readImage(join(dir, row.image, 'ir.png'));
      const vi = await readImage(join(dir, row.image, 'vi.png'));
      const f = await readImage(join(dir, row.image, `${row.fusion}.png`));
      const got = evaluateFusion(ir, vi, f);
      for (const [name, want] of Object.entries(row.values)) {
        const v = got[name as MetricName];
        expect(Math.abs(v - want) / Math.abs(want), `${name}: got ${v}, want ${want}`).toBeLessThan(
          REL,
        );
      }
      // The intended argument order measures the fused image's artefacts: an average of
      // the sources has no edge stronger than both, so it scores ~0 (the published ~0.1).
      const a = toGray(ir);
      const b = toGray(vi);
      const intended = nabfIntended(a, b, toGray(f));
      expect(intended).toBeGreaterThanOrEqual(0);
      expect(intended).toBeLessThan(row.values.Nabf);
      if (row.fusion === 'avg_gray') expect(intended).toBeLessThan(1e-3);
    });
  },
);
