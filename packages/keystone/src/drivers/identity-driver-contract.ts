/**
 * The behaviour every IdentityDriver shares, as node:test tests. A backend's
 * test file calls identityDriverContract() with a setup that stores
 * CONTRACT_DATA in that backend (choosing its own local ids) and returns a
 * driver reading it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { DriverGroup, DriverUser, IdentityDriver } from './identity-driver.ts';

export interface ContractUser {
  name: string;
  password: string;
  enabled: boolean;
  email?: string;
  description?: string;
}

export interface ContractGroup {
  name: string;
  description: string;
  /** User names. */
  members: string[];
}

export interface ContractData {
  users: ContractUser[];
  groups: ContractGroup[];
}

/** Names carry filter and DN syntax on purpose: a backend must treat them as plain values. */
export const CONTRACT_DATA: ContractData = {
  users: [
    { name: 'alice', password: 'alice-secret-1', enabled: true, email: 'alice@example.org', description: 'Alice A.' },
    { name: 'bob', password: 'bob-secret-2', enabled: false, email: 'bob@example.org' },
    { name: 'carol, (ops)*', password: 'c@rol pw with spaces', enabled: true },
    { name: 'dave', password: 'dave-secret-4', enabled: true },
    { name: 'zoë', password: 'zoë-sécret', enabled: true, email: 'zoe@example.org' },
  ],
  groups: [
    { name: 'developers', description: 'People who write code', members: ['alice', 'bob', 'dave'] },
    { name: 'operators', description: 'People on call', members: ['alice', 'carol, (ops)*', 'zoë'] },
    { name: 'nobody', description: 'No members', members: [] },
  ],
};

export interface ContractSubject {
  driver: IdentityDriver;
  teardown?(): Promise<void>;
}

const names = (xs: Array<{ name: string }>) => xs.map((x) => x.name);
const sorted = (xs: string[]) => [...xs].sort();

export function identityDriverContract(label: string, setup: (data: ContractData) => Promise<ContractSubject>): void {
  describe(`IdentityDriver contract: ${label}`, () => {
    let subject: ContractSubject;
    let driver: IdentityDriver;
    const user = async (name: string): Promise<DriverUser> => {
      const u = await driver.getUserByName(name);
      assert.ok(u, `user ${name} is found by name`);
      return u;
    };
    const group = async (name: string): Promise<DriverGroup> => {
      const g = await driver.getGroupByName(name);
      assert.ok(g, `group ${name} is found by name`);
      return g;
    };

    before(async () => {
      subject = await setup(CONTRACT_DATA);
      driver = subject.driver;
    });
    after(async () => {
      await driver?.close?.();
      await subject?.teardown?.();
    });

    it('reads users by name and by local id, with their attributes', async () => {
      for (const expected of CONTRACT_DATA.users) {
        const u = await user(expected.name);
        assert.equal(u.name, expected.name);
        assert.equal(u.enabled, expected.enabled, `${expected.name} enabled`);
        assert.equal(u.email, expected.email);
        if (expected.description) assert.equal(u.description, expected.description);
        assert.ok(u.id.length > 0);
        assert.deepEqual(await driver.getUser(u.id), u);
      }
    });

    it('answers undefined for unknown users and groups', async () => {
      assert.equal(await driver.getUser('no-such-user'), undefined);
      assert.equal(await driver.getUserByName('no-such-user'), undefined);
      assert.equal(await driver.getGroup('no-such-group'), undefined);
      assert.equal(await driver.getGroupByName('no-such-group'), undefined);
    });

    it('lists users, sorted by name, filtered by name, enabled and ids', async () => {
      const all = await driver.listUsers();
      assert.deepEqual(names(all), sorted(CONTRACT_DATA.users.map((u) => u.name)));
      assert.deepEqual(names(await driver.listUsers({ name: 'dave' })), ['dave']);
      assert.deepEqual(names(await driver.listUsers({ enabled: false })), ['bob']);
      assert.deepEqual(names(await driver.listUsers({ enabled: true })), sorted(CONTRACT_DATA.users.filter((u) => u.enabled).map((u) => u.name)));
      const alice = await user('alice');
      const zoe = await user('zoë');
      assert.deepEqual(await driver.listUsers({ ids: [zoe.id, 'no-such-user', alice.id, alice.id] }), [alice, zoe]);
      assert.deepEqual(await driver.listUsers({ ids: [] }), []);
      assert.deepEqual(await driver.listUsers({ ids: [alice.id, zoe.id], name: 'zoë' }), [zoe]);
    });

    it('reads and lists groups', async () => {
      for (const expected of CONTRACT_DATA.groups) {
        const g = await group(expected.name);
        assert.equal(g.description, expected.description);
        assert.deepEqual(await driver.getGroup(g.id), g);
      }
      assert.deepEqual(names(await driver.listGroups()), sorted(CONTRACT_DATA.groups.map((g) => g.name)));
      assert.deepEqual(names(await driver.listGroups({ name: 'operators' })), ['operators']);
    });

    it('resolves membership both ways', async () => {
      for (const g of CONTRACT_DATA.groups) {
        const { id } = await group(g.name);
        assert.deepEqual(names(await driver.listUsersInGroup(id)), sorted(g.members), `members of ${g.name}`);
      }
      for (const u of CONTRACT_DATA.users) {
        const { id } = await user(u.name);
        const expected = CONTRACT_DATA.groups.filter((g) => g.members.includes(u.name)).map((g) => g.name);
        assert.deepEqual(names(await driver.listGroupsForUser(id)), sorted(expected), `groups of ${u.name}`);
      }
      const carol = await user('carol, (ops)*');
      const operators = await group('operators');
      const developers = await group('developers');
      assert.equal(await driver.isUserInGroup(carol.id, operators.id), true);
      assert.equal(await driver.isUserInGroup(carol.id, developers.id), false);
      assert.deepEqual(await driver.listUsersInGroup('no-such-group'), []);
      assert.deepEqual(await driver.listGroupsForUser('no-such-user'), []);
      assert.equal(await driver.isUserInGroup('no-such-user', operators.id), false);
    });

    it('authenticates with the right password only', async () => {
      for (const u of CONTRACT_DATA.users) {
        const { id } = await user(u.name);
        assert.equal(await driver.authenticate(id, u.password), true, `${u.name} with the right password`);
        assert.equal(await driver.authenticate(id, `${u.password}x`), false, `${u.name} with a wrong password`);
        assert.equal(await driver.authenticate(id, u.password.slice(0, -1)), false, `${u.name} with a prefix of the password`);
      }
      const alice = await user('alice');
      assert.equal(await driver.authenticate(alice.id, ''), false, 'an empty password is not an anonymous bind');
      assert.equal(await driver.authenticate(alice.id, 'bob-secret-2'), false, "another user's password");
      assert.equal(await driver.authenticate('no-such-user', 'alice-secret-1'), false);
      assert.equal(await driver.authenticate('', ''), false);
    });

    it('treats filter syntax in input as plain text', async () => {
      const alice = await user('alice');
      for (const evil of ['*', '*)(uid=*', '*)(|(objectClass=*', 'alice)(objectClass=*', 'a*', '\\2a', `${alice.id})(cn=*`]) {
        assert.equal(await driver.getUserByName(evil), undefined, `user named ${evil}`);
        assert.equal(await driver.getUser(evil), undefined, `user id ${evil}`);
        assert.deepEqual(await driver.listUsers({ name: evil }), [], `users named ${evil}`);
        assert.deepEqual(await driver.listUsers({ ids: [evil] }), [], `users with id ${evil}`);
        assert.equal(await driver.authenticate(evil, 'alice-secret-1'), false, `authenticate ${evil}`);
        assert.equal(await driver.getGroupByName(evil), undefined, `group named ${evil}`);
        assert.deepEqual(await driver.listGroups({ name: evil }), [], `groups named ${evil}`);
        assert.deepEqual(await driver.listGroupsForUser(evil), [], `groups of ${evil}`);
        assert.deepEqual(await driver.listUsersInGroup(evil), [], `members of ${evil}`);
      }
      const carol = await user('carol, (ops)*');
      assert.deepEqual(names(await driver.listUsers({ name: 'carol, (ops)*' })), ['carol, (ops)*']);
      assert.equal(await driver.authenticate(carol.id, 'c@rol pw with spaces'), true);
    });

    it('serves concurrent requests', async () => {
      const alice = await user('alice');
      const dave = await user('dave');
      const results = await Promise.all(
        Array.from({ length: 24 }, (_, i) =>
          i % 3 === 0
            ? driver.authenticate(alice.id, i % 2 ? 'alice-secret-1' : 'wrong')
            : i % 3 === 1
              ? driver.authenticate(dave.id, 'dave-secret-4')
              : driver.listGroupsForUser(alice.id).then((gs) => gs.length === 2),
        ),
      );
      assert.deepEqual(results, Array.from({ length: 24 }, (_, i) => (i % 3 === 0 ? i % 2 === 1 : true)));
    });
  });
}
