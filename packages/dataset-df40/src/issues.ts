/** Counted problems with capped messages: nothing is dropped silently, and a log never floods. */
import type { DataIssues, DroppedInput, Split } from '@dfd/core';

/** A listing drop, with the split it happened in. */
export type ListingDrop = DroppedInput & { split: Split };

export class IssueLog {
  missing = 0;
  empty = 0;
  corrupt = 0;
  /** Every file or video folder listing left out (uncapped: the coverage report and its CSV list them all). */
  readonly drops: ListingDrop[] = [];
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
