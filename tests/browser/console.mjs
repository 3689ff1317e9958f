// The console in Debian's headless Chromium, driven by playwright-core.
// Run by tests/browser_test.cc, which starts the daemons:
//
//   node console.mjs main    RELAY_URL RELAY_TOKEN ORIGIN_URL ORIGIN_TOKEN FILE OUT_DIR PASSWORD
//   node console.mjs restart RELAY_URL RELAY_TOKEN OUT_DIR
//   node console.mjs rollout ORIGIN_URL ORIGIN_TOKEN OUT_DIR
//
// Exits 0 when every check held; otherwise prints the failed check and
// exits 1. Screenshots go to OUT_DIR.
import { chromium } from 'playwright-core';

const [phase, ...args] = process.argv.slice(2);
const TIMEOUT = 20000;

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

async function signIn(page, url, token) {
  await page.goto(url);
  await page.locator('#login').waitFor({ state: 'visible', timeout: TIMEOUT });
  await page.fill('#token', 'not-the-token');
  await page.click('#login-form button[type=submit]');
  await page.locator('#login-error').filter({ hasText: 'wrong admin token' })
    .waitFor({ timeout: TIMEOUT });
  await page.fill('#token', token);
  await page.click('#login-form button[type=submit]');
  await page.locator('#console').waitFor({ state: 'visible', timeout: TIMEOUT });
}

async function versionOf(page, component) {
  const cell = page.locator(`#components tr[data-component="${component}"] td:nth-child(2)`);
  return (await cell.count()) ? (await cell.textContent()).trim() : '';
}

// On a timeout, `seen` (when given) says what the page showed instead.
async function waitFor(what, fn, seen, timeout = TIMEOUT) {
  const end = Date.now() + timeout;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}${seen ? `; the page showed: ${await seen()}` : ''}`);
}

async function main(browser) {
  const [relayUrl, relayToken, originUrl, originToken, file, out, password] = args;
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const relay = await context.newPage();
  await signIn(relay, relayUrl, relayToken);
  await waitFor('virus 1 at the relay', async () => (await versionOf(relay, 'virus')) === '1');
  await waitFor('agents on virus 1 in the chart', async () =>
    (await relay.locator('#agents-chart').getAttribute('data-labels')).includes('virus 1'));
  await relay.screenshot({ path: `${out}/relay-before.png`, fullPage: true });

  // Publish at the origin's console; its incrementals appear.
  const origin = await context.newPage();
  await signIn(origin, originUrl, originToken);
  await origin.fill('#publish-component', 'virus');
  await origin.setInputFiles('#publish-file', file);
  await origin.click('#publish-form button[type=submit]');
  await origin.locator('#publish-result').filter({ hasText: 'published virus 3' })
    .waitFor({ timeout: TIMEOUT });
  await waitFor('the incremental v_1.3 at the origin', async () =>
    (await origin.locator('#components tr[data-component="virus"]').textContent())
      .includes('v_1.3'));
  // The origin counts the relay's agents, their versions and health, from
  // the relay's report up its Watch stream.
  await waitFor('the fleet on virus 3 at the origin', async () => {
    const row = origin.locator('#fleet tr[data-fleet="virus 3"]');
    return (await row.count()) > 0 &&
      (await row.locator('td').allTextContents()).join(' ') === 'virus 3 6 3 3 0 ';
  });
  await origin.screenshot({ path: `${out}/origin-published.png`, fullPage: true });

  // The relay's page follows without a reload: version and chart.
  await waitFor('virus 3 at the relay', async () => (await versionOf(relay, 'virus')) === '3');
  await waitFor('agents on virus 3 in the chart', async () => {
    const labels = await relay.locator('#agents-chart').getAttribute('data-labels');
    return labels.includes('virus 3') && !labels.includes('virus 1');
  });
  const arrived = await relay.locator('#components tr[data-component="virus"]').textContent();
  check(arrived.includes('incremental'), `virus 3 arrived by incremental: ${arrived}`);

  await relay.click('#update-now');
  await relay.locator('#update-result').filter({ hasText: 'already current' })
    .waitFor({ timeout: TIMEOUT });

  // A bad period is explained next to the form; a good one applies.
  await relay.fill('#period-input', 'soon');
  await relay.click('#period-form button[type=submit]');
  await relay.locator('#period-error').filter({ hasText: 'soon' }).waitFor({ timeout: TIMEOUT });
  await relay.fill('#period-input', '45m');
  await relay.click('#period-form button[type=submit]');
  await relay.locator('#period-result').filter({ hasText: 'every 45m' })
    .waitFor({ timeout: TIMEOUT });
  await waitFor('the period shown', async () =>
    (await relay.locator('#period').textContent()) === '45m');

  // The proxy password goes in and never comes back.
  await relay.fill('#proxy-input', `http://op:${password}@127.0.0.1:3128`);
  await relay.click('#proxy-form button[type=submit]');
  await relay.locator('#proxy-result').filter({ hasText: 'with credentials' })
    .waitFor({ timeout: TIMEOUT });
  await waitFor('the proxy shown', async () =>
    (await relay.locator('#proxy-shown').textContent()).includes('127.0.0.1:3128'));
  const html = await relay.content();
  const inputs = await relay.$$eval('input', (els) => els.map((e) => e.value).join(' '));
  check(!html.includes(password) && !inputs.includes(password), 'no password in the page');
  const seen = await relay.evaluate(async () => {
    const a = await (await fetch('/api/v1/status')).text();
    const b = await (await fetch('/metrics')).text();
    return a + b;
  });
  check(seen.length > 1000 && !seen.includes(password), 'no password in the API or /metrics');
  await relay.screenshot({ path: `${out}/relay-after.png`, fullPage: true });
  await relay.click('#proxy-clear');
  await relay.locator('#proxy-result').filter({ hasText: 'proxy cleared' })
    .waitFor({ timeout: TIMEOUT });

  // Readable on a phone.
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const small = await phone.newPage();
  await signIn(small, relayUrl, relayToken);
  await waitFor('virus 3 on the phone', async () => (await versionOf(small, 'virus')) === '3');
  const overflow = await small.evaluate(() =>
    document.documentElement.scrollWidth - document.documentElement.clientWidth);
  check(overflow <= 1, `no sideways scrolling at phone width (overflow ${overflow}px)`);
  await small.screenshot({ path: `${out}/relay-phone.png`, fullPage: true });
}

async function restart(browser) {
  const [relayUrl, relayToken, out] = args;
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await signIn(page, relayUrl, relayToken);
  await waitFor('the period after the restart', async () =>
    (await page.locator('#period').textContent()) === '45m');
  await page.screenshot({ path: `${out}/relay-restarted.png`, fullPage: true });
}

// virus 5 rolls out ring by ring (canary 50 %, an hour's bake): the
// origin's console shows the rings with their agents, and halts, resumes
// and promotes it by hand; the gate's decisions are listed.
async function rollout(browser) {
  const [originUrl, originToken, out] = args;
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await signIn(page, originUrl, originToken);
  const box = page.locator('#rollouts div[data-rollout="virus 5"]');
  const cell = (ring, n) => box.locator(`tr[data-ring="${ring}"] td:nth-child(${n})`);
  await waitFor('canary agents on virus 5 and broad ones waiting', async () =>
    (await box.count()) > 0 && Number(await cell('canary', 5).textContent()) > 0 &&
    (await cell('broad', 3).textContent()) === 'waiting' &&
    Number(await cell('broad', 4).textContent()) > 0,
  async () => (await page.locator('#rollouts').textContent()).replace(/\s+/g, ' '),
  // Publish, sync, push, install, report, sum at the relay, sum at the
  // origin: longer than one step on a loaded machine.
  3 * TIMEOUT);
  check((await cell('broad', 5).textContent()) === '0', 'no broad agent on virus 5');
  await page.waitForTimeout(2500);  // a few samples in the chart
  await page.screenshot({ path: `${out}/origin-rollout.png`, fullPage: true });
  await box.locator('button[data-action="halt virus"]').click();
  await waitFor('HALTED shown', async () => (await box.locator('h3').textContent()).includes('HALTED'));
  await page.screenshot({ path: `${out}/origin-rollout-halted.png`, fullPage: true });
  await box.locator('button[data-action="resume virus"]').click();
  await waitFor('rolling again', async () =>
    (await box.locator('h3').textContent()).includes('rolling out'));
  await box.locator('button[data-action="promote virus"]').click();
  await waitFor('the rollout complete', async () =>
    (await page.locator('#rollouts div').count()) === 0 &&
    (await page.locator('#rollout-decisions li[data-action="complete"]').count()) === 1);
  const decisions = await page.locator('#rollout-decisions').textContent();
  check(decisions.includes('halt') && decisions.includes('resume'), 'halt and resume listed');
  await page.screenshot({ path: `${out}/origin-rollout-done.png`, fullPage: true });
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update'],
});
let rc = 0;
try {
  await (phase === 'restart' ? restart(browser)
    : phase === 'rollout' ? rollout(browser) : main(browser));
  console.log(`browser ${phase}: ok`);
} catch (e) {
  console.error(`browser ${phase}: ${e.message}`);
  rc = 1;
} finally {
  await browser.close();
}
process.exit(rc);
