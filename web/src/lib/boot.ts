// The data the server writes into every page (crates/http/src/web/pages.rs), so pages know
// who is logged in and where map tiles come from without an extra request.

/** The logged-in user, as far as every page needs to know. */
export interface BootUser {
  id: number;
  username: string;
  first_name: string;
  is_admin: boolean;
}

export interface Boot {
  page: string;
  version: string;
  user: BootUser | null;
  tile_url: string;
  tile_attribution: string;
}

function read(): Boot {
  const text = document.getElementById('boot')?.textContent ?? '';
  return JSON.parse(text) as Boot;
}

export const boot: Boot = read();

/** The logged-in user; every page but the login page has one (the server redirects otherwise). */
export function me(): BootUser {
  if (!boot.user) throw new Error('not logged in');
  return boot.user;
}
