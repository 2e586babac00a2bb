/**
 * System metrics under MLflow's own names (`system/cpu_utilization_percentage`,
 * `system/system_memory_usage_megabytes`, `system/system_memory_usage_percentage`), so the MLflow UI's
 * system-metrics charts work unchanged. Sampled from `os` every 10 s by default, like the Python monitor.
 */
import { cpus, freemem, totalmem } from 'node:os';
import type { Metric } from './types.js';

function cpuTimes(): { idle: number; total: number } {
  let idle = 0;
  let total = 0;
  for (const cpu of cpus()) {
    const t = cpu.times;
    idle += t.idle;
    total += t.user + t.nice + t.sys + t.idle + t.irq;
  }
  return { idle, total };
}

export class SystemMetricsSampler {
  private timer: NodeJS.Timeout | undefined;
  private previous = cpuTimes();
  private step = 0;

  constructor(
    private readonly intervalMs: number,
    private readonly sink: (metrics: Metric[]) => void,
  ) {}

  start(): void {
    if (this.timer) return;
    this.previous = cpuTimes();
    this.timer = setInterval(() => this.sink(this.sample()), this.intervalMs);
    this.timer.unref();
  }

  /** One sample: CPU use since the previous sample, memory now. */
  sample(now = Date.now()): Metric[] {
    const current = cpuTimes();
    const total = current.total - this.previous.total;
    const idle = current.idle - this.previous.idle;
    this.previous = current;
    const cpu = total > 0 ? Math.max(0, Math.min(100, (100 * (total - idle)) / total)) : 0;
    const used = totalmem() - freemem();
    const step = this.step++;
    const at = (key: string, value: number): Metric => ({ key: `system/${key}`, value, timestamp: now, step });
    return [
      at('cpu_utilization_percentage', Math.round(cpu * 10) / 10),
      at('system_memory_usage_megabytes', Math.round((used / 2 ** 20) * 10) / 10),
      at('system_memory_usage_percentage', Math.round((1000 * used) / totalmem()) / 10),
    ];
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
