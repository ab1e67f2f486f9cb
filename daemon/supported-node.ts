// Imported first by the CLI: on a Node.js older than the oldest supported LTS line, say so in one line and exit 1
// before anything else runs.
const MIN_NODE_MAJOR = 22;

const major = Number(process.versions.node.split('.')[0]);
if (major < MIN_NODE_MAJOR) {
  process.stderr.write(
    `pv-xconnect: Node.js ${process.version} is not supported: it needs Node.js ${MIN_NODE_MAJOR} or newer\n`,
  );
  process.exit(1);
}
