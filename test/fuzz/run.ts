// `npm run fuzz -- NAME [SECONDS]`: runs one fuzz target for as long as asked (default 60 s).
// Each target module exports `fuzz(budgetMs, log)` and returns the number of inputs tried; it throws on a finding.
const targets: Record<string, string> = {
  http: './http.js',
  dbus: './dbus.js',
};

const [name, seconds = '60'] = process.argv.slice(2);
const module = name ? targets[name] : undefined;
if (!module) {
  console.error(`usage: npm run fuzz -- <${Object.keys(targets).join('|')}> [seconds]`);
  process.exit(2);
}
const { fuzz } = (await import(module)) as {
  fuzz: (budgetMs: number, log: (line: string) => void) => Promise<number> | number;
};
const started = Date.now();
const tried = await fuzz(Number(seconds) * 1000, (line) => console.log(line));
console.log(`${name}: ${tried} inputs in ${((Date.now() - started) / 1000).toFixed(1)} s, no findings`);
