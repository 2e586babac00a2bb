/** A progress line with img/s and ETA: redrawn on a terminal, a plain line every 10 s otherwise. */
import type { CliIO } from '@dfd/core';

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h}h${String(m).padStart(2, '0')}m` : m ? `${m}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

export class Progress {
  private lastLine = 0;
  private readonly start = Date.now();

  constructor(
    private readonly io: CliIO,
    private readonly label: string,
    private readonly total: number,
  ) {}

  update(done: number, skipped: number): void {
    const seconds = (Date.now() - this.start) / 1000;
    const rate = seconds > 0 ? done / seconds : 0;
    const eta = rate > 0 ? (this.total - done) / rate : Number.NaN;
    const text = `${done}/${this.total} images, ${rate.toFixed(rate < 1 ? 3 : 1)} img/s, ETA ${formatDuration(eta)}${skipped ? `, ${skipped} skipped` : ''}`;
    if (this.io.isTTY) {
      const width = 30;
      const filled = this.total ? Math.round((done / this.total) * width) : width;
      this.io.stdout.write(`\r${this.label}: [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${text}`);
      if (done >= this.total) this.io.stdout.write('\n');
    } else if (done >= this.total || Date.now() - this.lastLine > 10_000) {
      this.lastLine = Date.now();
      this.io.stdout.write(`${this.label}: ${text}\n`);
    }
  }
}
