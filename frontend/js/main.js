// Entry point: signed in, the chat loads; signed out, only the sign-in screen does.

import { get } from './api.js';
import { $, toast } from './dom.js';

async function start(me) {
  (await import('./app.js')).signedIn(me);
}

let me = null;
try {
  me = await get('/api/me');
} catch (e) {
  (await import('./auth.js')).showAuth(start);
  if (e.status !== 401) toast(`chatnode is unreachable: ${e.message}`, 'error');
}
if (me) await start(me);
$('#boot').hidden = true;
