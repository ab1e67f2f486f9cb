// The live page of a pvx-sim stack: draws the snapshots the simulator streams (server-sent events) as a graph of
// containers and links, tables of links, containers and daemons, and the last events; its buttons act through the
// mock pv-ctrl. Plain DOM and SVG: rows and edges are kept by key and updated in place, so a button under the
// pointer is never replaced while it is being clicked.

const SVG = 'http://www.w3.org/2000/svg';
const HOST = '_pv_';
const NODE = { width: 170, height: 42, column: 370, row: 64, margin: 24 };
/** Each link leaves its consumer at its own height, its service named beside the start. */
const LANE = 12;
const token = document.querySelector('meta[name="pvx-token"]').content;

/** The daemon's key of a link: consumer, service, target (with the daemon's default target). */
function linkKey(link) {
  const target = link.target ?? (link.type === 'drm' ? link.socket : `/run/pv/services/${link.name}.sock`);
  return `${link.consumer}|${link.name}|${target}`;
}

function element(tag, attributes = {}, text = null, namespace = null) {
  const node = namespace ? document.createElementNS(namespace, tag) : document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== null) node.textContent = text;
  return node;
}

/** Keeps `body`'s rows one per item (by key), creating rows as needed and updating every row in place. */
function syncRows(body, items, keyOf, create, update) {
  const existing = new Map([...body.children].map((row) => [row.dataset.key, row]));
  let previous = null;
  for (const item of items) {
    const key = keyOf(item);
    let row = existing.get(key);
    if (row) existing.delete(key);
    else {
      row = create(item);
      row.dataset.key = key;
    }
    update(row, item);
    const next = previous ? previous.nextSibling : body.firstChild;
    if (next !== row) body.insertBefore(row, next);
    previous = row;
  }
  for (const row of existing.values()) row.remove();
}

function cells(row, count) {
  while (row.children.length < count) row.append(element('td'));
  return [...row.children];
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function bytes(count) {
  if (count === undefined) return '';
  if (count < 1024) return `${count} B`;
  if (count < 1024 * 1024) return `${(count / 1024).toFixed(1)} KiB`;
  return `${(count / 1024 / 1024).toFixed(1)} MiB`;
}

// --- the graph ------------------------------------------------------------------------------------------------

let drawnShape = '';

/** Columns by depth: containers that only provide on the right, their consumers to the left of them. */
function layout(names, links) {
  const providersOf = new Map(names.map((name) => [name, new Set()]));
  for (const link of links) providersOf.get(link.consumer)?.add(link.provider);
  const depth = new Map();
  const depthOf = (name, visiting = new Set()) => {
    if (depth.has(name)) return depth.get(name);
    if (visiting.has(name)) return 0;
    visiting.add(name);
    const providers = [...(providersOf.get(name) ?? [])].filter((provider) => provider !== name);
    const value = providers.length === 0 ? 0 : 1 + Math.max(...providers.map((p) => depthOf(p, visiting)));
    depth.set(name, value);
    return value;
  };
  const deepest = Math.max(0, ...names.map((name) => depthOf(name)));
  const columns = new Map();
  for (const name of names) {
    const column = deepest - depthOf(name);
    if (!columns.has(column)) columns.set(column, []);
    columns.get(column).push(name);
  }
  const positions = new Map();
  let rows = 0;
  for (const [column, members] of columns) {
    members.sort();
    rows = Math.max(rows, members.length);
    members.forEach((name, row) => {
      positions.set(name, { x: NODE.margin + column * NODE.column, y: NODE.margin + row * NODE.row });
    });
  }
  return {
    positions,
    width: NODE.margin * 2 + deepest * NODE.column + NODE.width,
    height: NODE.margin * 2 + Math.max(0, rows - 1) * NODE.row + NODE.height,
  };
}

function drawGraph(snapshot) {
  const svg = document.getElementById('graph');
  const names = snapshot.containers.map((container) => container.name);
  if (snapshot.graph.some((link) => link.provider === HOST || link.consumer === HOST)) names.push(HOST);
  const shape = JSON.stringify([
    names,
    snapshot.graph.map(linkKey),
    snapshot.graph.map((link) => link.provider),
  ]);
  if (shape !== drawnShape) {
    drawnShape = shape;
    buildGraph(svg, names, snapshot);
  }
  const statusOf = new Map(snapshot.containers.map((container) => [container.name, container.status]));
  for (const node of svg.querySelectorAll('.node')) {
    const status = node.dataset.name === HOST ? 'host' : (statusOf.get(node.dataset.name) ?? '');
    node.setAttribute('class', `node ${status.toLowerCase()}`);
    setText(
      node.querySelector('.status'),
      node.dataset.name === HOST ? 'the host (pv-xconnect side)' : status,
    );
  }
  const live = new Map((snapshot.links ?? []).map((link) => [linkKey(link), link]));
  for (const edge of svg.querySelectorAll('.link')) {
    const link = live.get(edge.dataset.link);
    edge.dataset.state = link ? link.state : 'unknown';
    const title = edge.querySelector('title');
    setText(
      title,
      `${edge.dataset.label}: ${link ? link.state : 'not in pv-xconnect'}${link?.error ? ` (${link.error})` : ''}`,
    );
  }
}

function buildGraph(svg, names, snapshot) {
  svg.replaceChildren();
  const { positions, width, height } = layout(names, snapshot.graph);
  svg.setAttribute('width', width);
  svg.setAttribute('height', height);
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  const defs = element('defs', {}, null, SVG);
  for (const [type, colour] of Object.entries(snapshot.colours)) {
    const marker = element(
      'marker',
      {
        id: `arrow-${type}`,
        viewBox: '0 0 10 10',
        refX: 9,
        refY: 5,
        markerWidth: 7,
        markerHeight: 7,
        orient: 'auto',
      },
      null,
      SVG,
    );
    marker.append(element('path', { d: 'M0,0 L10,5 L0,10 z', fill: colour }, null, SVG));
    defs.append(marker);
  }
  svg.append(defs);

  // Edges first, under the nodes: each leaves its consumer in its own lane, named at the start, and the links
  // into one provider spread over its left side.
  const outgoing = new Map();
  const incoming = new Map();
  const incomingCount = new Map();
  for (const link of snapshot.graph)
    incomingCount.set(link.provider, (incomingCount.get(link.provider) ?? 0) + 1);
  for (const link of snapshot.graph) {
    const from = positions.get(link.consumer);
    const to = positions.get(link.provider);
    if (!from || !to) continue;
    const lane = outgoing.get(link.consumer) ?? 0;
    outgoing.set(link.consumer, lane + 1);
    const slot = incoming.get(link.provider) ?? 0;
    incoming.set(link.provider, slot + 1);
    const x1 = from.x + NODE.width;
    const y1 = from.y + 9 + lane * LANE;
    const x2 = to.x;
    const y2 = to.y + (NODE.height * (slot + 1)) / ((incomingCount.get(link.provider) ?? 1) + 1);
    const bend = Math.max(60, Math.abs(x2 - x1) / 2);
    const colour = snapshot.colours[link.type] ?? '#7f7f7f';
    const label = `${link.name} (${link.type}${link.role === 'any' ? '' : `, ${link.role}`})`;
    const group = element(
      'g',
      {
        class: 'link',
        'data-link': linkKey(link),
        'data-label': `${link.consumer} → ${link.provider}: ${label}`,
        'data-type': link.type,
        'data-provider': link.provider,
        'data-consumer': link.consumer,
      },
      null,
      SVG,
    );
    group.append(element('title', {}, label, SVG));
    group.append(
      element(
        'path',
        {
          d: `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`,
          stroke: colour,
          'marker-end': `url(#arrow-${link.type})`,
        },
        null,
        SVG,
      ),
    );
    group.append(element('text', { x: x1 + 6, y: y1 - 2, fill: colour }, label, SVG));
    svg.append(group);
  }
  for (const name of names) {
    const { x, y } = positions.get(name);
    const node = element(
      'g',
      { class: 'node', 'data-name': name, transform: `translate(${x},${y})` },
      null,
      SVG,
    );
    node.append(element('rect', { width: NODE.width, height: NODE.height, rx: 6 }, null, SVG));
    node.append(element('text', { x: 10, y: 17 }, name, SVG));
    node.append(element('text', { x: 10, y: 33, class: 'status' }, '', SVG));
    svg.append(node);
  }
  const legend = document.getElementById('legend');
  legend.replaceChildren(
    ...[...new Set(snapshot.graph.map((link) => link.type))].map((type) => {
      const item = element('li', { 'data-type': type });
      const swatch = element('span', { class: 'swatch' });
      swatch.style.background = snapshot.colours[type] ?? '#7f7f7f';
      item.append(swatch, type);
      return item;
    }),
    element('li', {}, 'solid: active · dashed: pending · dotted: failed'),
  );
}

// --- tables ---------------------------------------------------------------------------------------------------

function drawLinks(snapshot) {
  const live = new Map((snapshot.links ?? []).map((link) => [linkKey(link), link]));
  const counting = (snapshot.links ?? []).some((link) => typeof link.denied === 'number');
  for (const cell of document.querySelectorAll('#links .denied')) cell.classList.toggle('hidden', !counting);
  syncRows(
    document.querySelector('#links tbody'),
    snapshot.graph,
    linkKey,
    () => element('tr'),
    (row, link) => {
      const now = live.get(linkKey(link));
      row.dataset.link = linkKey(link);
      row.dataset.provider = link.provider;
      row.dataset.state = now ? now.state : 'unknown';
      const [consumer, service, type, role, provider, state, connections, traffic, denied, error] = cells(
        row,
        10,
      );
      setText(consumer, link.consumer);
      setText(service, link.name);
      if (!type.firstChild) {
        const chip = element('span', { class: 'chip' }, link.type);
        chip.style.background = snapshot.colours[link.type] ?? '#7f7f7f';
        type.append(chip);
      }
      setText(role, link.role);
      setText(provider, link.provider);
      setText(state, now ? now.state : '—');
      state.className = `state ${now ? now.state : ''}`;
      setText(connections, now ? `${now.connections.active} / ${now.connections.total}` : '');
      setText(traffic, now?.bytes ? `${bytes(now.bytes.toProvider)} / ${bytes(now.bytes.toConsumer)}` : '');
      denied.className = counting ? 'denied' : 'denied hidden';
      setText(denied, typeof now?.denied === 'number' ? String(now.denied) : '');
      error.className = 'error';
      setText(error, now?.error ?? '');
    },
  );
}

function actionButtons(cell, kind, name, actions, disabledWhy) {
  if (cell.children.length === 0) {
    for (const action of actions) {
      const button = element('button', { type: 'button', 'data-action': action }, action);
      button.addEventListener('click', () => act(kind, name, action, button));
      cell.append(button);
    }
  }
  for (const button of cell.children) {
    button.disabled = disabledWhy !== null;
    button.title =
      disabledWhy ??
      `${kind === 'containers' ? 'pvcontrol containers' : 'pvcontrol daemons'} ${button.dataset.action} ${name}`;
  }
}

function drawContainers(snapshot) {
  syncRows(
    document.querySelector('#containers tbody'),
    snapshot.containers,
    (container) => container.name,
    () => element('tr'),
    (row, container) => {
      row.dataset.container = container.name;
      row.dataset.status = container.status;
      const [name, group, status, policy, buttons] = cells(row, 5);
      setText(name, container.name);
      setText(group, container.group);
      setText(status, container.status);
      status.className = `status ${container.status}`;
      setText(policy, container.restart_policy);
      const why =
        container.restart_policy === 'container' ? null : "restart_policy 'system': pv-ctrl refuses (403)";
      actionButtons(buttons, 'containers', container.name, ['stop', 'start', 'restart'], why);
    },
  );
}

function drawDaemons(snapshot) {
  syncRows(
    document.querySelector('#daemons tbody'),
    snapshot.daemons,
    (daemon) => daemon.name,
    () => element('tr'),
    (row, daemon) => {
      row.dataset.daemon = daemon.name;
      const [name, pid, respawn, buttons] = cells(row, 4);
      setText(name, daemon.name);
      setText(pid, String(daemon.pid));
      setText(respawn, String(daemon.respawn));
      actionButtons(buttons, 'daemons', daemon.name, ['stop', 'start'], null);
    },
  );
}

function drawEvents(snapshot) {
  const list = document.getElementById('events');
  const items = [...snapshot.events].reverse().map((event) => {
    const item = element('li', { class: event.bad ? 'bad' : '', 'data-kind': event.kind });
    item.append(element('time', { datetime: event.time }, event.time.slice(11, 19)), event.text);
    return item;
  });
  const text = items.map((item) => item.textContent).join('\n');
  if (list.dataset.text !== text) {
    list.dataset.text = text;
    list.replaceChildren(...items);
  }
}

function draw(snapshot) {
  document.title = `pvx-sim: ${snapshot.instance}`;
  setText(document.getElementById('title'), `${snapshot.stack} (${snapshot.instance})`);
  const xconnect = snapshot.daemons.find((daemon) => daemon.name === 'pv-xconnect');
  const active = (snapshot.links ?? []).filter((link) => link.state === 'active').length;
  setText(
    document.getElementById('summary'),
    `pv-xconnect ${xconnect && xconnect.pid > 0 ? `pid ${xconnect.pid}` : 'not running'} · ` +
      `${active}/${snapshot.graph.length} links active · interval ${snapshot.interval} s · ` +
      `${snapshot.time.slice(11, 19)}`,
  );
  drawGraph(snapshot);
  drawLinks(snapshot);
  drawContainers(snapshot);
  drawDaemons(snapshot);
  drawEvents(snapshot);
  document.body.dataset.updated = snapshot.time;
}

// --- actions --------------------------------------------------------------------------------------------------

function notice(text, ok) {
  const node = document.getElementById('notice');
  node.textContent = text;
  node.className = ok ? 'ok' : '';
}

async function act(kind, name, action, button) {
  button.disabled = true;
  try {
    const response = await fetch(`/api/${kind}/${encodeURIComponent(name)}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-PVX-Token': token },
      body: JSON.stringify({ action }),
    });
    const body = await response.text();
    if (response.ok) notice(`pv-ctrl: ${action} ${name}: ok`, true);
    else notice(`pv-ctrl: ${action} ${name}: ${response.status} ${body}`, false);
  } catch (error) {
    notice(`${action} ${name}: ${error.message}`, false);
  } finally {
    button.disabled = false;
  }
}

// --- the stream -----------------------------------------------------------------------------------------------

const source = new EventSource('/api/events');
source.onmessage = (message) => draw(JSON.parse(message.data));
source.onerror = () => setText(document.getElementById('summary'), 'disconnected: is the stack still up?');
