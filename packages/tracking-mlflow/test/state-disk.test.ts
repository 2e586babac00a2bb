import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SyncState, STATE_FILE } from '../src/state.js';
import { mountSmallDisk } from '../../core/test/support/tmpfs.js';

// A live tracker whose run directory fills up must keep talking to MLflow (the server still has to learn that
// the run failed): the sync cursor stays in memory until the disk takes it again. Found by CI, where the
// tracker's first flush met a full disk and detached as if MLflow had refused the run.
describe('the sync state on a real full disk', () => {
  it('keeps the cursor in memory while the disk is full and writes it once there is space', () => {
    const disk = mountSmallDisk(3);
    try {
      const state = new SyncState(disk.dir);
      state.target('http://127.0.0.1:5000').sentEvents = 7;
      disk.fill();
      expect(() => state.save()).not.toThrow();
      expect(state.unsavedBecause?.message).toMatch(/ENOSPC/);
      expect(existsSync(`${disk.dir}/${STATE_FILE}`)).toBe(false);
      disk.free();
      state.save();
      expect(state.unsavedBecause).toBeUndefined();
      const saved = JSON.parse(readFileSync(`${disk.dir}/${STATE_FILE}`, 'utf8')) as { targets: Record<string, { sentEvents: number }> };
      expect(saved.targets['http://127.0.0.1:5000']!.sentEvents).toBe(7);
    } finally {
      disk.unmount();
    }
  });
});
