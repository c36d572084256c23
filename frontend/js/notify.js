// The title badge and, when the person allows it, browser notifications for mentions and DMs.

import { $ } from './dom.js';
import { S, label } from './state.js';

const button = $('#enable-notify');
const notified = new Set();

export function updateTitle() {
  let unread = 0;
  for (const ch of S.channels.values()) if (ch.member) unread += ch.unread;
  const ch = S.current && S.channels.get(S.current);
  const base = ch ? `${label(ch)} · chatnode` : 'chatnode';
  document.title = unread ? `(${unread > 999 ? '999+' : unread}) ${base}` : base;
}

export function updateNotifyButton() {
  button.hidden = !('Notification' in window) || Notification.permission !== 'default';
}

button.addEventListener('click', async () => {
  try {
    await Notification.requestPermission();
  } catch { /* older browsers: callback form, ignored */ }
  updateNotifyButton();
});

/** Shows a notification once per message ID, when the page is not being looked at. */
export function notify(id, title, body, onclick) {
  if (notified.has(id)) return;
  notified.add(id);
  if (!('Notification' in window) || Notification.permission !== 'granted') return;
  if (document.visibilityState === 'visible' && document.hasFocus()) return;
  try {
    const n = new Notification(title, { body: body.length > 160 ? `${body.slice(0, 160)}…` : body, tag: id });
    n.onclick = () => {
      window.focus();
      onclick();
      n.close();
    };
  } catch { /* some platforms only notify from a service worker */ }
}
