// The administrators' page: the overview (users, channels, sockets per node, Redis memory) and
// disabling or enabling an account. Shown only to users the node lists in `auth.admins`.

import { h, setText, pane, toast } from './dom.js';
import { get, post, enc } from './api.js';

const stats = h('dl', { id: 'admin-stats', class: 'stats' });
const status = h('p', { id: 'admin-status', class: 'muted', role: 'status' });
const who = h('input', { id: 'admin-user', autocapitalize: 'none', spellcheck: 'false', placeholder: 'username' });
const form = h('form', { id: 'admin-form', class: 'stack' },
  h('h2', null, 'Accounts'),
  h('div', { class: 'field' },
    h('label', { for: 'admin-user' }, 'Username'),
    h('div', { class: 'row' }, who,
      h('button', { type: 'submit', class: 'danger small', value: 'disable' }, 'Disable'),
      h('button', { type: 'submit', class: 'ghost small', value: 'enable' }, 'Enable')),
    h('p', { class: 'field-note' }, 'Disabling signs the person out everywhere at once and refuses their sign-in until enabled.')));
pane('admin', 'Administration').append(h('h2', null, 'Overview'), status, stats, form);

export async function showAdmin() {
  setText(status, 'Loading…');
  try {
    const o = await get('/api/admin/overview');
    const rows = [
      ['Users', `${o.users} (${o.disabled_users} disabled)`],
      ['Public channels', o.channels.public],
      ['Private channels and groups', o.channels.private],
      ['Sockets on this node', o.this_node_sockets],
      ...o.nodes.map((n) => [`Node ${n.node.slice(0, 8)}`, `${n.sockets} sockets`]),
      ['Redis memory', o.redis.used_memory_human],
    ];
    stats.replaceChildren(...rows.flatMap(([k, v]) => [h('dt', null, k), h('dd', null, String(v))]));
    setText(status, '');
  } catch (e) {
    setText(status, e.status === 403 ? 'Administrators only.' : `Could not load it: ${e.message}`);
  }
}

form.addEventListener('submit', async (e) => {
  e.preventDefault();
  const action = e.submitter && e.submitter.value === 'enable' ? 'enable' : 'disable';
  const name = who.value.trim().toLowerCase();
  if (!name) return;
  if (action === 'disable' && !window.confirm(`Disable ${name}? They are signed out everywhere at once.`)) return;
  try {
    await post(`/api/admin/users/${enc(name)}/${action}`);
    toast(`${name} is ${action}d.`);
    form.reset();
    showAdmin();
  } catch (ex) {
    toast(ex.code === 'user_not_found' ? `There is no user ${name}.` : ex.message, 'error');
  }
});
