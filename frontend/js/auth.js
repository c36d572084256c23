// Sign in and sign up. The username's availability is checked as it is typed.

import { $, setText, debounce } from './dom.js';
import { post, get, enc } from './api.js';
import { locate, splitHobbies } from './geo.js';

const USERNAME_RE = /^[a-z0-9_.-]{3,32}$/;
const tabs = { signin: $('#tab-signin'), signup: $('#tab-signup') };
const forms = { signin: $('#signin-form'), signup: $('#signup-form') };
let onDone = () => {};

/** Shows the sign-in screen; `signedIn(user)` runs once the person is in. */
export function showAuth(signedIn) {
  onDone = signedIn;
  $('#app').hidden = true;
  $('#auth').hidden = false;
  document.title = 'Sign in · chatnode';
  selectTab('signin', false);
  $('#si-username').focus();
}

export function selectTab(name, focus = true) {
  for (const [k, tab] of Object.entries(tabs)) {
    const on = k === name;
    tab.setAttribute('aria-selected', String(on));
    tab.tabIndex = on ? 0 : -1;
    forms[k].hidden = !on;
  }
  if (focus) forms[name].querySelector('input').focus();
}

for (const [k, tab] of Object.entries(tabs)) {
  tab.addEventListener('click', () => selectTab(k));
  tab.addEventListener('keydown', (e) => {
    if (e.key === 'ArrowLeft' || e.key === 'ArrowRight') {
      e.preventDefault();
      const next = k === 'signin' ? 'signup' : 'signin';
      selectTab(next, false);
      tabs[next].focus();
    }
  });
}

function fieldError(input, note, text, ok = false) {
  setText(note, text);
  note.classList.toggle('error', !!text && !ok);
  note.classList.toggle('ok', ok);
  if (text && !ok) input.setAttribute('aria-invalid', 'true');
  else input.removeAttribute('aria-invalid');
}

// Sign in.
forms.signin.addEventListener('submit', async (e) => {
  e.preventDefault();
  const username = $('#si-username').value.trim();
  const password = $('#si-password').value;
  const err = $('#si-error');
  if (!username || !password) {
    setText(err, 'Enter your username and password.');
    return;
  }
  setText(err, '');
  const button = forms.signin.querySelector('button[type=submit]');
  button.disabled = true;
  try {
    const r = await post('/api/auth/login', { username, password });
    forms.signin.reset();
    onDone(r.user);
  } catch (ex) {
    setText(err, ex.code === 'invalid_credentials' ? 'Wrong username or password.' : ex.message);
    $('#si-password').select();
  } finally {
    button.disabled = false;
  }
});

// Sign up.
const suName = $('#su-username');
const suNameNote = $('#su-username-status');
const suPass = $('#su-password');
const suPassNote = $('#su-password-status');
let checking = '';

const checkName = debounce(async (name) => {
  checking = name;
  try {
    const r = await get(`/api/usernames/${enc(name)}`);
    if (checking !== name) return;
    if (r.available) fieldError(suName, suNameNote, `✓ “${r.username}” is available`, true);
    else fieldError(suName, suNameNote, `“${r.username}” is taken. Try another.`);
  } catch (ex) {
    if (checking === name) fieldError(suName, suNameNote, ex.message);
  }
}, 250);

suName.addEventListener('input', () => {
  const name = suName.value.trim().toLowerCase();
  checking = '';
  if (!name) {
    fieldError(suName, suNameNote, '3–32 characters: a–z, 0–9, _ . -');
  } else if (!USERNAME_RE.test(name)) {
    fieldError(suName, suNameNote, name.length < 3 ? 'At least 3 characters.' : 'Use only a–z, 0–9, _ . and - (at most 32).');
  } else {
    fieldError(suName, suNameNote, 'Checking…', true);
    checkName(name);
  }
});

suPass.addEventListener('input', () => {
  const n = suPass.value.length;
  if (n && n < 8) fieldError(suPass, suPassNote, `At least 8 characters (${8 - n} more).`);
  else fieldError(suPass, suPassNote, n ? '✓ Long enough' : 'At least 8 characters.', n >= 8);
});

forms.signup.addEventListener('submit', async (e) => {
  e.preventDefault();
  const err = $('#su-error');
  setText(err, '');
  const username = suName.value.trim().toLowerCase();
  const password = suPass.value;
  let bad = false;
  if (!USERNAME_RE.test(username)) {
    fieldError(suName, suNameNote, 'Choose a username of 3–32 characters: a–z, 0–9, _ . -');
    bad = true;
  }
  if (password.length < 8) {
    fieldError(suPass, suPassNote, 'The password needs at least 8 characters.');
    bad = true;
  }
  if (bad) {
    forms.signup.querySelector('[aria-invalid=true]').focus();
    return;
  }
  const body = { username, password };
  for (const k of ['firstname', 'lastname', 'city', 'country']) {
    const v = forms.signup.elements[k].value.trim();
    if (v) body[k] = v;
  }
  const hobbies = splitHobbies(forms.signup.elements.hobbies.value);
  if (hobbies.length) body.hobbies = hobbies;
  const button = forms.signup.querySelector('button[type=submit]');
  button.disabled = true;
  try {
    if ($('#su-location').checked) {
      try {
        body.location = await locate();
      } catch (ex) {
        setText(err, `Your location was not added: ${ex.message}.`);
      }
    }
    const r = await post('/api/auth/register', body);
    forms.signup.reset();
    onDone(r.user);
  } catch (ex) {
    if (ex.code === 'username_taken' || ex.code === 'invalid_username') {
      fieldError(suName, suNameNote, ex.code === 'username_taken' ? `“${username}” is taken. Try another.` : ex.message);
      suName.focus();
    } else if (ex.code === 'weak_password') {
      fieldError(suPass, suPassNote, ex.message);
      suPass.focus();
    } else {
      setText(err, ex.message);
    }
  } finally {
    button.disabled = false;
  }
});

