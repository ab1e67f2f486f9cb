// `npm run bench -- NAME...`: runs the named benchmark groups (all when none is named).
const groups: Record<string, string[]> = {
  native: ['./native-fd.js', './native-ns.js'],
  unix: ['./unix.js'],
  pins: ['./pins.js'],
  wayland: ['./wayland.js'],
  rest: ['./rest.js'],
  dbus: ['./dbus.js'],
  footprint: ['./footprint.js'],
};

const names = process.argv.slice(2).length > 0 ? process.argv.slice(2) : Object.keys(groups);
for (const name of names) {
  const modules = groups[name];
  if (!modules) {
    console.error(`unknown benchmark '${name}'; known: ${Object.keys(groups).join(', ')}`);
    process.exit(2);
  }
  for (const module of modules) {
    const { run } = (await import(module)) as { run: () => Promise<void> };
    await run();
  }
}
