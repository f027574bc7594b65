/** A binary min-heap over a comparator; `updateTop` re-sorts after the top item's key grew. */
export class MinHeap<T> {
  readonly #items: T[];
  readonly #less: (left: T, right: T) => boolean;

  constructor(items: readonly T[], less: (left: T, right: T) => boolean) {
    this.#items = items.slice();
    this.#less = less;
    for (let index = (this.#items.length >> 1) - 1; index >= 0; index -= 1) this.#siftDown(index);
  }

  get size(): number {
    return this.#items.length;
  }

  peek(): T | undefined {
    return this.#items[0];
  }

  pop(): T | undefined {
    const items = this.#items;
    const top = items[0];
    const last = items.pop();
    if (items.length > 0 && last !== undefined) {
      items[0] = last;
      this.#siftDown(0);
    }
    return top;
  }

  push(item: T): void {
    this.#items.push(item);
    this.#siftUp(this.#items.length - 1);
  }

  /** Restores order after the top item's key increased in place. */
  updateTop(): void {
    this.#siftDown(0);
  }

  #siftDown(start: number): void {
    const items = this.#items;
    const item = items[start];
    if (item === undefined) return;
    let index = start;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= items.length) break;
      const right = left + 1;
      let child = left;
      let childItem = items[left];
      const rightItem = items[right];
      if (rightItem !== undefined && childItem !== undefined && this.#less(rightItem, childItem)) {
        child = right;
        childItem = rightItem;
      }
      if (childItem === undefined || !this.#less(childItem, item)) break;
      items[index] = childItem;
      index = child;
    }
    items[index] = item;
  }

  #siftUp(start: number): void {
    const items = this.#items;
    const item = items[start];
    if (item === undefined) return;
    let index = start;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      const parentItem = items[parent];
      if (parentItem === undefined || !this.#less(item, parentItem)) break;
      items[index] = parentItem;
      index = parent;
    }
    items[index] = item;
  }
}
