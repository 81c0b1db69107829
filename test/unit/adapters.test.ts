import { describe, expect, it } from 'vitest';
import { parseServersState, parseShowStat, stateFromRow } from '../../src/lib/lb/haproxy.js';
import { parseStateLine } from '../../src/lib/lb/command.js';
import { parseSystemctlShow, serviceStateFromShow } from '../../src/lib/service/systemd.js';
import { startTimeFromStat } from '../../src/lib/service/command.js';
import { fillShell, fillUrl } from '../../src/lib/template.js';
import { checkHttpAnswer } from '../../src/lib/probes/http.js';

// Captured from HAProxy 2.6 (`show servers state web; show stat`), trimmed to the columns that matter.
const SERVERS_STATE = `1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port
3 web 1 node1 10.213.1.11 2 0 1 1 12 6 3 4 6 0 0 0 - 8080 - 0 0 - - 0
3 web 2 node2 10.213.1.12 2 1 1 1 3 6 3 4 6 0 0 0 - 8080 - 0 0 - - 0
3 web 3 node3 10.213.1.13 2 8 1 1 3 6 3 4 6 0 0 0 - 8080 - 0 0 - - 0
3 web 4 node4 10.213.1.14 0 0 1 1 3 6 3 0 6 0 0 0 - 8080 - 0 0 - - 0
`;
const SHOW_STAT = `# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,
front,FRONTEND,,,40,40,2000,100,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,0,0,40,,
web,node1,0,0,3,9,,500,0,0,,0,,0,0,0,0,UP,1,1,0,0,0,12,0,,1,3,1,,500,,2,0,,40,L7OK,
web,node2,0,0,0,9,,500,0,0,,0,,0,0,0,0,MAINT,1,1,0,0,0,3,0,,1,3,2,,500,,2,0,,40,L7OK,
web,node3,0,0,2,9,,500,0,0,,0,,0,0,0,0,DRAIN,1,1,0,0,0,3,0,,1,3,3,,500,,2,0,,40,L7OK,
web,node4,0,0,0,9,,500,0,0,,0,,0,0,0,0,DOWN,1,1,0,0,0,3,0,,1,3,4,,500,,2,0,,40,L4CON,
web,BACKEND,0,0,5,40,200,2000,0,0,0,0,,0,0,0,0,UP,3,3,0,,0,12,0,,1,3,0,,2000,,1,0,,40,,
`;

describe('HAProxy runtime API parsing', () => {
  const rows = parseServersState(SERVERS_STATE);
  const stats = parseShowStat(SHOW_STAT, 'web');
  const state = (name: string) =>
    stateFromRow({ ...rows.get(name)!, sessions: stats.get(name)?.scur, status: stats.get(name)?.status });

  it('reads admin and operational state by column name', () => {
    expect(rows.get('node2')).toEqual({ adminState: 1, opState: 2 });
    expect(stats.get('node3')).toEqual({ scur: 2, status: 'DRAIN' });
    expect(stats.has('BACKEND')).toBe(false);
  });

  it('maps servers to up, maint, drain, down with their sessions', () => {
    expect(state('node1')).toMatchObject({ state: 'up', sessions: 3 });
    expect(state('node2')).toMatchObject({ state: 'maint', sessions: 0 });
    expect(state('node3')).toMatchObject({ state: 'drain', sessions: 2 });
    expect(state('node4')).toMatchObject({ state: 'down' });
    expect(stateFromRow(undefined)).toEqual({ state: 'absent' });
  });
});

describe('command load balancer state line', () => {
  it.each([
    ['up', { state: 'up' }],
    ['drain 3\n', { state: 'drain', sessions: 3 }],
    ['MAINT 0', { state: 'maint', sessions: 0 }],
  ])('%j', (text, expected) =>
    expect(parseStateLine(text)).toEqual({ ok: true, value: { sessions: undefined, ...expected } }),
  );
  it('refuses anything else, saying what it got', () => {
    expect(parseStateLine('ok')).toMatchObject({ ok: false, reason: expect.stringMatching(/printed "ok"/) });
    expect(parseStateLine('up many')).toMatchObject({ ok: false });
  });
});

describe('systemd state', () => {
  it('a running unit has a main PID and a start timestamp as identity', () => {
    const props = parseSystemctlShow(
      'ActiveState=active\nSubState=running\nMainPID=812\nExecMainStartTimestampMonotonic=91234567\n',
    );
    expect(serviceStateFromShow(props)).toEqual({
      running: true,
      identity: { pid: 812, startTime: '91234567' },
      detail: 'active/running pid 812',
    });
  });
  it('an exited unit is not running; a deactivating one still has its process', () => {
    expect(
      serviceStateFromShow(parseSystemctlShow('ActiveState=inactive\nSubState=dead\nMainPID=0\n')).running,
    ).toBe(false);
    expect(
      serviceStateFromShow(parseSystemctlShow('ActiveState=failed\nSubState=failed\nMainPID=0\n')).running,
    ).toBe(false);
    expect(
      serviceStateFromShow(parseSystemctlShow('ActiveState=deactivating\nSubState=stop-sigterm\nMainPID=9\n'))
        .running,
    ).toBe(true);
  });
});

describe('/proc/PID/stat start time', () => {
  it('counts fields after the last parenthesis (command names may hold spaces and parentheses)', () => {
    const fields = Array.from({ length: 50 }, (_, i) => String(i + 3));
    expect(startTimeFromStat(`123 (my (odd) prog) S ${fields.slice(1).join(' ')}`)).toBe('22');
  });
  it('a zombie has exited', () => {
    expect(
      startTimeFromStat('123 (sleep) Z 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21'),
    ).toBeUndefined();
  });
});

describe('templates', () => {
  const values = { node: 'web1', host: '10.0.0.1', 'vars.path': "/srv/my app's" };
  it('shell-quotes every value placed into a command', () => {
    expect(fillShell('ls {vars.path} && echo {node}', values)).toBe(`ls '/srv/my app'\\''s' && echo web1`);
  });
  it('leaves URL-safe values bare and encodes the rest', () => {
    expect(fillUrl('http://{host}:8080/h?p={vars.path}', values)).toBe(
      "http://10.0.0.1:8080/h?p=%2Fsrv%2Fmy%20app's",
    );
  });
});

describe('HTTP probe answers', () => {
  const probe = {
    type: 'http',
    url: 'x',
    method: 'GET',
    expectStatus: 200,
    unreachableIsPass: false,
    insecure: false,
    timeout: 1000,
  } as const;
  it('checks status, body text and a JSON field', () => {
    expect(checkHttpAnswer(probe, 200, 'ok')).toEqual({ ok: true });
    expect(checkHttpAnswer(probe, 503, '')).toEqual({ ok: false, reason: 'HTTP 503 (expected 200)' });
    expect(
      checkHttpAnswer(
        { ...probe, json: { path: 'queue.inflight', equals: 0 } },
        200,
        '{"queue":{"inflight":4}}',
      ),
    ).toEqual({ ok: false, reason: 'queue.inflight is 4 (waiting for 0)' });
    expect(
      checkHttpAnswer(
        { ...probe, json: { path: 'queue.inflight', equals: 0 } },
        200,
        '{"queue":{"inflight":0}}',
      ),
    ).toEqual({ ok: true });
    expect(checkHttpAnswer({ ...probe, bodyContains: 'ready' }, 200, 'starting')).toMatchObject({
      ok: false,
    });
  });
});
