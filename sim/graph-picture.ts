// The graph as a picture: Graphviz DOT and Mermaid text (pure), one node per container, one edge per link from
// consumer to provider labelled with the service, its type and the consumer's role.
import type { GraphEntry } from './pv-ctrl/graph-builder.js';

export interface PictureInput {
  /** Every container of the stack, so that containers without links show too. */
  containers: string[];
  links: GraphEntry[];
}

function edgeLabel(link: GraphEntry): string {
  return link.role === 'any' ? `${link.name} (${link.type})` : `${link.name} (${link.type}, ${link.role})`;
}

function quoteDot(text: string): string {
  return `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

export function toDot(graph: PictureInput, title: string): string {
  const lines = [
    `digraph ${quoteDot(title)} {`,
    '  rankdir=LR;',
    '  node [shape=box, style=rounded];',
    ...graph.containers.map((name) => `  ${quoteDot(name)};`),
    ...graph.links.map(
      (link) =>
        `  ${quoteDot(link.consumer)} -> ${quoteDot(link.provider)} [label=${quoteDot(edgeLabel(link))}];`,
    ),
    '}',
  ];
  return `${lines.join('\n')}\n`;
}

export function toMermaid(graph: PictureInput): string {
  // Mermaid ids must be plain words: number the containers, show their names as labels.
  const ids = new Map(graph.containers.map((name, index) => [name, `c${index}`]));
  const id = (name: string) => {
    if (!ids.has(name)) ids.set(name, `c${ids.size}`);
    return ids.get(name) as string;
  };
  const label = (text: string) => text.replace(/"/g, '#quot;');
  const lines = [
    'flowchart LR',
    ...graph.containers.map((name) => `  ${id(name)}["${label(name)}"]`),
    ...graph.links.map(
      (link) => `  ${id(link.consumer)} -->|"${label(edgeLabel(link))}"| ${id(link.provider)}`,
    ),
  ];
  return `${lines.join('\n')}\n`;
}
