import * as ort from 'onnxruntime-node';
const paths = process.argv.slice(2);
const batch = 8;
const px = new Float32Array(batch * 3 * 224 * 224).map((_, i) => Math.sin(i * 0.37));
const sessions = [];
for (const p of paths) sessions.push(await ort.InferenceSession.create(p, { intraOpNumThreads: 2, graphOptimizationLevel: 'all' }));
const feeds = { pixel_values: new ort.Tensor('float32', px, [batch, 3, 224, 224]) };
for (const s of sessions) await s.run(feeds);
const rates = paths.map(() => []);
for (let round = 0; round < 3; round++) {
  for (let k = 0; k < sessions.length; k++) {
    let n = 0; const t = performance.now();
    do { await sessions[k].run(feeds); n += batch; } while (performance.now() - t < 4000);
    rates[k].push(n / ((performance.now() - t) / 1000));
  }
}
paths.forEach((p, k) => console.log(p.split('/').slice(-3).join('/'), rates[k].map((r) => r.toFixed(2)).join(' '), 'best', Math.max(...rates[k]).toFixed(2)));
