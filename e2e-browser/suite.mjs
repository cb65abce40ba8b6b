// What every browser test file shares: one stack started as `make dev` starts it, one Chromium,
// and a wrapper for test bodies that attaches the stack's log to a failure, allows no page
// errors and closes the test's people. A failed run keeps the stack's folder for a look.

import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import * as Y from 'yjs';

import { launchBrowser, person } from './browser.mjs';
import { DevStack } from './stack.mjs';

/** Registers the suite's before/after hooks; returns its stack (once started), `e2e` and `serverDoc`. */
export function browserSuite() {
  let browser;
  const people = [];
  let failed = false;
  const suite = {
    /** The running stack (set by the `before` hook). */
    stack: undefined,

    /** A test body with the stack's log attached to any failure, and no page errors allowed. */
    e2e: (body) => async (t) => {
      const mine = [];
      const join = async (who) => {
        const p = await person(browser, who);
        people.push(p);
        mine.push(p);
        return p;
      };
      try {
        await body({ join, t });
        for (const p of mine) assert.deepEqual(p.errors.map(String), [], `${p.name}'s page threw`);
      } catch (error) {
        failed = true;
        error.message += `\n--- make dev log (tail) ---\n${suite.stack?.dev.tail(40)}`;
        throw error;
      } finally {
        await Promise.allSettled(mine.map((p) => p.context.close()));
      }
    },

    /** The room's document as the edge stores it. */
    async serverDoc(room) {
      const response = await fetch(`${suite.stack.url}/rooms/${room.room}/snapshot`, { headers: { authorization: `Bearer ${room.view_token}` } });
      assert.equal(response.status, 200);
      const doc = new Y.Doc();
      Y.applyUpdate(doc, new Uint8Array(await response.arrayBuffer()));
      return doc;
    },
  };

  before(async () => {
    suite.stack = await DevStack.start();
    browser = await launchBrowser();
  }, { timeout: 20 * 60_000 }); // the first `make dev` on a machine may build a lot

  after(async () => {
    await Promise.allSettled(people.map((p) => p.context.close()));
    await browser?.close();
    await suite.stack?.dispose({ keep: failed });
  });

  return suite;
}
