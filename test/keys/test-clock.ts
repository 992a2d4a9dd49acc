/** A settable clock for code under test that takes `now: () => Date`. */
export function testClock(start = new Date('2030-01-01T00:00:00Z')) {
  let current = start.getTime();
  return {
    now: () => new Date(current),
    advance(seconds: number) {
      current += seconds * 1000;
    },
  };
}

export type TestClock = ReturnType<typeof testClock>;
