/**
 * Console progress from the run-event stream: on a TTY one redrawn line (bar, step, loss, images/s, ETA);
 * otherwise plain lines at most every few seconds, so CI logs stay readable.
 */
import type { Observable, Subscription } from 'rxjs';
import type { RunEvent } from '../events.js';

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--:--';
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n: number) => String(n).padStart(2, '0');
  return h ? `${h}:${pad(m)}:${pad(s % 60)}` : `${pad(m)}:${pad(s % 60)}`;
}

export function formatMetric(value: number | undefined): string {
  if (value === undefined) return '-';
  if (!Number.isFinite(value)) return String(value);
  return Math.abs(value) >= 100 ? value.toFixed(1) : value.toFixed(4);
}

export function attachProgress(events: Observable<RunEvent>, out: NodeJS.WritableStream, plainIntervalMs = 5000): Subscription {
  const isTTY = Boolean((out as NodeJS.WriteStream).isTTY);
  let startedAt = 0;
  let firstStep = 0;
  let lastPlain = 0;
  let lineOpen = false;
  const line = (text: string) => {
    if (lineOpen) out.write('\n');
    lineOpen = false;
    out.write(`${text}\n`);
  };
  return events.subscribe((event) => {
    switch (event.type) {
      case 'run-start':
        startedAt = event.time;
        firstStep = event.resumedFromStep ?? 0;
        line(`run ${event.runName} → ${event.runDir} (${event.totalSteps} steps${event.resumedFromStep ? `, resumed at ${event.resumedFromStep}` : ''})`);
        break;
      case 'step': {
        const done = event.step - firstStep;
        const elapsed = (event.time - startedAt) / 1000;
        const eta = done > 0 ? (elapsed / done) * (event.totalSteps - event.step) : Number.NaN;
        const text = `step ${event.step}/${event.totalSteps} epoch ${event.epoch + 1} loss ${formatMetric(event.loss)} lr ${event.lr.toExponential(2)} ${event.imagesPerSecond.toFixed(1)} img/s ETA ${formatDuration(eta)}`;
        if (isTTY) {
          const width = 24;
          const filled = Math.round((event.step / Math.max(1, event.totalSteps)) * width);
          out.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${text}\x1b[K`);
          lineOpen = true;
        } else if (event.time - lastPlain >= plainIntervalMs || event.step === event.totalSteps) {
          lastPlain = event.time;
          line(text);
        }
        break;
      }
      case 'eval': {
        const o = event.report.overall;
        line(`${event.split} @ step ${event.step}: auc ${formatMetric(o.auc)} ap ${formatMetric(o.ap)} acc ${formatMetric(o.acc)}`);
        break;
      }
      case 'checkpoint':
        if (event.kind === 'best') line(`best checkpoint @ step ${event.step} (${event.selectedBy?.metric} ${formatMetric(event.selectedBy?.value)})`);
        break;
      case 'warning':
        line(`warning [${event.source}]: ${event.message}`);
        break;
      case 'end':
        line(`run ${event.status} at step ${event.step}${event.error ? `: ${event.error}` : ''}`);
        break;
      default:
        break;
    }
  });
}
