// The graph as a picture: Graphviz DOT and Mermaid text (pure), one node per container, one edge per link from
// consumer to provider labelled with the service, its type and the consumer's role, coloured by type, with a
// legend of the types drawn. With pv-xconnect's live view of the links, each edge also shows its state.
import { defaultTarget, linkKey } from '../protocols/graph/xconnect-graph.js';
import type { GraphEntry } from './pv-ctrl/graph-builder.js';

/** One colour per link type, shared by the pictures and the live page. */
export const LINK_COLOURS: Readonly<Record<string, string>> = {
  unix: '#1f77b4',
  rest: '#2ca02c',
  dbus: '#9467bd',
  drm: '#d62728',
  wayland: '#ff7f0e',
};
const OTHER_COLOUR = '#7f7f7f';

export const colourOf = (type: string) => LINK_COLOURS[type] ?? OTHER_COLOUR;

/** What pv-xconnect's status API says of a link (the part the picture shows). */
export interface LiveLink {
  consumer: string;
  name: string;
  target: string;
  state: string;
  error: string | null;
  connections: { active: number; total: number };
}

export interface PictureInput {
  /** Every container of the stack, so that containers without links show too. */
  containers: string[];
  links: GraphEntry[];
  /** pv-xconnect's links when the stack is up: edges then show their state. */
  live?: LiveLink[];
}

/** The live entry of a graph link (the daemon reports the target with defaults applied). */
export function liveLinkOf(link: GraphEntry, live: readonly LiveLink[]): LiveLink | undefined {
  const key = linkKey({ ...link, target: link.target ?? defaultTarget(link.type, link.name, link.socket) });
  return live.find((entry) => linkKey(entry) === key);
}

function edgeLabel(link: GraphEntry, live: LiveLink | undefined, offline: boolean): string {
  const base =
    link.role === 'any' ? `${link.name} (${link.type})` : `${link.name} (${link.type}, ${link.role})`;
  if (live) return `${base}\n${live.state}${live.error ? `: ${live.error}` : ''}`;
  return offline ? `${base}\nnot in pv-xconnect` : base;
}

/** Edge style by state: active solid and thick, pending dashed, failed dotted, unknown solid. */
const STYLE: Record<string, string> = { active: 'solid', pending: 'dashed', failed: 'dotted' };

function quoteDot(text: string): string {
  return `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
}

function typesDrawn(links: readonly GraphEntry[]): string[] {
  return [...new Set(links.map((link) => link.type))];
}

export function toDot(graph: PictureInput, title: string): string {
  const edge = (link: GraphEntry) => {
    const live = graph.live && liveLinkOf(link, graph.live);
    const colour = colourOf(link.type);
    const attributes = [
      `label=${quoteDot(edgeLabel(link, live, graph.live !== undefined))}`,
      `color="${colour}"`,
      `fontcolor="${colour}"`,
    ];
    if (live)
      attributes.push(`style=${STYLE[live.state] ?? 'solid'}`, `penwidth=${live.state === 'active' ? 2 : 1}`);
    return `  ${quoteDot(link.consumer)} -> ${quoteDot(link.provider)} [${attributes.join(', ')}];`;
  };
  const legendRows = typesDrawn(graph.links).map(
    (type) => `<TR><TD BGCOLOR="${colourOf(type)}" WIDTH="16"> </TD><TD ALIGN="LEFT">${type}</TD></TR>`,
  );
  if (graph.live) {
    legendRows.push(
      '<TR><TD COLSPAN="2" ALIGN="LEFT">thick: active, dashed: pending, dotted: failed</TD></TR>',
    );
  }
  const lines = [
    `digraph ${quoteDot(title)} {`,
    '  rankdir=LR;',
    '  node [shape=box, style="rounded,filled", fillcolor="#f4f4f4", fontname="Helvetica"];',
    '  edge [fontname="Helvetica", fontsize=10];',
    ...graph.containers.map((name) => `  ${quoteDot(name)};`),
    ...graph.links.map(edge),
  ];
  if (legendRows.length > 0) {
    lines.push(
      '  subgraph cluster_legend {',
      '    label="link types"; style=dashed; fontname="Helvetica";',
      '    "legend" [shape=plaintext, style="", label=<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" ' +
        `CELLPADDING="4">${legendRows.join('')}</TABLE>>];`,
      '  }',
    );
  }
  lines.push('}');
  return `${lines.join('\n')}\n`;
}

export function toMermaid(graph: PictureInput): string {
  // Mermaid ids must be plain words: number the containers, show their names as labels.
  const ids = new Map(graph.containers.map((name, index) => [name, `c${index}`]));
  const id = (name: string) => {
    if (!ids.has(name)) ids.set(name, `c${ids.size}`);
    return ids.get(name) as string;
  };
  const label = (text: string) => text.replace(/"/g, '#quot;').replace(/\n/g, '<br/>');
  const lines = [
    'flowchart LR',
    ...graph.containers.map((name) => `  ${id(name)}["${label(name)}"]`),
    ...graph.links.map((link) => {
      const live = graph.live && liveLinkOf(link, graph.live);
      const text = label(edgeLabel(link, live, graph.live !== undefined));
      return `  ${id(link.consumer)} ${live?.state === 'pending' ? '-.->' : '-->'}|"${text}"| ${id(link.provider)}`;
    }),
    ...graph.links.map(
      (link, index) => `  linkStyle ${index} stroke:${colourOf(link.type)},color:${colourOf(link.type)}`,
    ),
  ];
  const types = typesDrawn(graph.links);
  if (types.length > 0) {
    lines.push('  subgraph legend["link types"]');
    for (const type of types) lines.push(`    type_${type}["${type}"]`);
    lines.push('  end');
    for (const type of types) lines.push(`  style type_${type} fill:${colourOf(type)},color:#fff`);
  }
  return `${lines.join('\n')}\n`;
}
