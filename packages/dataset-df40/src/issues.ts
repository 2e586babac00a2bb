/** Counted problems with capped messages: nothing is dropped silently, and a log never floods. */
import type { DataIssues } from '@dfd/core';

export class IssueLog {
  missing = 0;
  empty = 0;
  corrupt = 0;
  private readonly list: string[] = [];
  private dropped = 0;

  constructor(private readonly maxMessages = 50) {}

  note(message: string): void {
    if (this.list.length < this.maxMessages) this.list.push(message);
    else this.dropped++;
  }

  get messages(): string[] {
    return this.dropped ? [...this.list, `... and ${this.dropped} more`] : [...this.list];
  }

  snapshot(): DataIssues {
    return { missing: this.missing, empty: this.empty, corrupt: this.corrupt, messages: this.messages };
  }
}
