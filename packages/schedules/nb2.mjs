import { Rng } from './dist/index.js';
const n = 10_000_000; const out = new Float32Array(n);
const cpu = (f) => { const c = process.cpuUsage(); f(); const d = process.cpuUsage(c); return ((d.user + d.system) * 1000 / n).toFixed(1); };
for (let rep = 0; rep < 2; rep++) {
const r = new Rng(1);
console.log('normal cpu-ns', cpu(() => { for (let i = 0; i < n; i++) out[i] = r.normal(); }),
 'fill cpu-ns', cpu(() => r.fillNormal(out)),
 'uniform', cpu(() => { let s = 0; for (let i = 0; i < n; i++) s += r.uniform(); }),
 'log', cpu(() => { let s = 0; for (let i = 1; i <= n; i++) s += Math.log(i * 1e-7); }));
}
