"""Which environment variables the code reads, found statically (no import, no environment needed).

Scans each service's settings modules (services/*/src/**/settings.py: the one place a service reads its
configuration; a CLI's own inputs, e.g. gammu's SMS_* hook variables, are not configuration) and
libs/common/src/grizzly_common/settings.py for:
  env_str / env_int / env_float / env_bool / env_list / env_secret (env, "NAME", default...), and a service's own
  wrappers called the same way (f(env, "NAME", ...));
  plain reads env.get("NAME", default) / env["NAME"] / os.environ.get(...);
  names built at run time: the UPSTREAM_<NAME>_* family of upstreams_from_env, POOL_COUNTRY_MAP_<NAME>, the
  console's CONSOLE_OPERATOR_<NAME>_TOKEN (one per name in CONSOLE_OPERATORS).
A service reads the shared variables of grizzly_common.settings when its settings call the helper that reads them
(upstreams_from_env). Used by the compose and Kubernetes tests and by the docs/configuration.md check.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMMON_SETTINGS = ROOT / "libs/common/src/grizzly_common/settings.py"
HELPERS = {"env_str", "env_int", "env_float", "env_bool", "env_list", "env_secret"}
FAMILY_PREFIX = "UPSTREAM_<NAME>_"  # how docs and reports spell one variable per upstream name
OPERATOR_FAMILY = "CONSOLE_OPERATOR_<NAME>_"  # one variable per console operator (CONSOLE_OPERATORS)
NO_DEFAULT = "(required)"

DYNAMIC = "<NAME>"  # the run-time part of a built name (an upstream name, upper-cased)
VAR_NAME = re.compile(r"[A-Z][A-Z0-9_]*_[A-Z0-9_]+")
ENV_RECEIVERS = {"env", "environ"}  # env.get("X") / env["X"] / os.environ.get("X")


def service_dirs() -> tuple[str, ...]:
    return tuple(sorted(p.parent.name for p in (ROOT / "services").glob("*/pyproject.toml")))


@dataclass(frozen=True)
class EnvVar:
    name: str  # e.g. REDIS_URL, or UPSTREAM_<NAME>_KEY for the per-upstream family
    default: str  # source text of the default, NO_DEFAULT for env_secret / a required value
    helper: str  # env_int, env_secret, ...
    where: str  # path:line relative to the repository root

    @property
    def required(self) -> bool:
        return self.default == NO_DEFAULT

    secret: bool = False  # read with env_secret somewhere: belongs in a Secret, never in a ConfigMap

    def concrete(self, upstreams: tuple[str, ...], operators: tuple[str, ...] = ()) -> list[str]:
        """The real names: the families expand to one per upstream name (UPSTREAMS), one per console operator
        (CONSOLE_OPERATORS: the name upper-cased, any other character than a letter or a digit as "_")."""
        if self.name.startswith(FAMILY_PREFIX):
            suffix = self.name[len(FAMILY_PREFIX) :]
            return [f"UPSTREAM_{u.upper().replace('-', '_')}_{suffix}" for u in upstreams]
        if self.name.startswith(OPERATOR_FAMILY):
            return [self.name.replace(DYNAMIC, re.sub(r"[^A-Z0-9]", "_", o.upper())) for o in operators]
        return [self.name]


@dataclass
class ServiceEnv:
    directory: str
    vars: dict[str, EnvVar] = field(default_factory=dict)
    has_settings: bool = False  # the service has a settings module yet


def _module_constants(tree: ast.Module) -> dict[str, str]:
    """NAME -> repr of its value, for module constants, plus local `name = "PREFIX_" + x` (any scope)."""
    constants: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            built = _var_name(node.value, {}) if isinstance(node.value, ast.BinOp | ast.JoinedStr) else None
            if built is not None and DYNAMIC in built:
                constants[node.targets[0].id] = repr(built)
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            value = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            value = node.value
        else:
            continue
        target = node.targets[0] if isinstance(node, ast.Assign) else node.target
        assert isinstance(target, ast.Name)
        try:
            constants[target.id] = repr(ast.literal_eval(value))
        except ValueError:
            continue
    return constants


def _helper_name(call: ast.Call) -> str | None:
    """env_str(...) etc., or a service's own wrapper called the same way: f(env, "SOME_NAME", ...)."""
    func = call.func
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
    if name in HELPERS:
        return name
    if name is not None and len(call.args) >= 2 and _is_env(call.args[0]):
        arg = call.args[1]
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and VAR_NAME.fullmatch(arg.value):
            return name
    return None


def _var_name(arg: ast.expr, constants: dict[str, str]) -> str | None:
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.Name) and arg.id in constants:
        return constants[arg.id].strip("'\"")
    if isinstance(arg, ast.JoinedStr):  # f"POOL_COUNTRY_MAP_{upstream.upper()}"
        return "".join(str(v.value) if isinstance(v, ast.Constant) else DYNAMIC for v in arg.values)
    if isinstance(arg, ast.BinOp) and isinstance(arg.op, ast.Add):
        if isinstance(arg.right, ast.Constant) and not isinstance(arg.left, ast.Constant):
            # prefix + "KEY": the per-upstream family of grizzly_common.settings
            return FAMILY_PREFIX + str(arg.right.value)
        if isinstance(arg.left, ast.Constant) and not isinstance(arg.right, ast.Constant):
            return str(arg.left.value) + DYNAMIC  # "POOL_COUNTRY_MAP_" + upstream.upper()
    return None


def _is_env(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return node.id in ENV_RECEIVERS
    return isinstance(node, ast.Attribute) and node.attr == "environ"


def _plain_read(node: ast.AST) -> tuple[ast.expr, ast.expr | None] | None:
    """env.get(NAME[, default]) or env[NAME]: (name node, default node)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
        if _is_env(node.func.value) and node.args:
            return node.args[0], node.args[1] if len(node.args) > 1 else None
    if isinstance(node, ast.Subscript) and _is_env(node.value) and isinstance(node.ctx, ast.Load):
        return node.slice, None
    return None


def _default_text(call: ast.Call, helper: str, constants: dict[str, str]) -> str:
    if helper == "env_secret":
        return NO_DEFAULT
    node = call.args[2] if len(call.args) > 2 else next((k.value for k in call.keywords if k.arg == "default"), None)
    if node is None:
        return NO_DEFAULT
    return _literal(node, constants)


def _literal(node: ast.expr, constants: dict[str, str]) -> str:
    if isinstance(node, ast.Name) and node.id in constants:
        return constants[node.id]
    try:
        return repr(ast.literal_eval(node))
    except ValueError:
        return ast.unparse(node)


def scan_file(path: Path) -> list[EnvVar]:
    tree = ast.parse(path.read_text(), filename=str(path))
    constants = _module_constants(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.expr | ast.stmt):
            continue
        plain = _plain_read(node)
        if plain is not None:
            name = _var_name(plain[0], constants)
            if name is None and isinstance(plain[0], ast.Name):
                continue  # a name passed in by the caller (the helpers themselves): the caller's call is scanned
            if name is None:
                raise ValueError(f"{path}:{node.lineno}: an environment read this scanner cannot name")
            default = NO_DEFAULT if plain[1] is None else _literal(plain[1], constants)
            found.append(EnvVar(name, default, "env.get", f"{path.relative_to(ROOT)}:{node.lineno}"))
            continue
        if not isinstance(node, ast.Call):
            continue
        helper = _helper_name(node)
        if helper is None or len(node.args) < 2:
            continue
        name = _var_name(node.args[1], constants)
        if name is None and isinstance(node.args[1], ast.Name):
            continue  # a wrapper passing its own parameter on: the wrapper's callers are scanned
        if name is None:
            raise ValueError(f"{path}:{node.lineno}: {helper} with a variable name this scanner cannot read")
        where = f"{path.relative_to(ROOT)}:{node.lineno}"
        found.append(EnvVar(name, _default_text(node, helper, constants), helper, where, helper == "env_secret"))
    return found


def merge(first: EnvVar, second: EnvVar) -> EnvVar:
    """Two reads of one variable: optional if either read has a default; secret if either is a secret read."""
    base = second if first.required and not second.required else first
    return replace(base, secret=first.secret or second.secret)


def _add(into: dict[str, EnvVar], var: EnvVar) -> None:
    into[var.name] = merge(into[var.name], var) if var.name in into else var


def _common_functions() -> dict[str, list[EnvVar]]:
    """Public functions of grizzly_common.settings that read variables (upstreams_from_env), with what they read."""
    tree = ast.parse(COMMON_SETTINGS.read_text())
    by_function: dict[str, list[EnvVar]] = {}
    all_vars = {(v.where): v for v in scan_file(COMMON_SETTINGS)}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_") and node.name not in HELPERS:
            lines = range(node.lineno, (node.end_lineno or node.lineno) + 1)
            reads = [v for v in all_vars.values() if int(v.where.rsplit(":", 1)[1]) in lines]
            if reads:
                by_function[node.name] = reads
    return by_function


def _calls(tree: ast.Module, names: set[str]) -> set[str]:
    called = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name in names:
                called.add(name)
    return called


def scan_service(directory: str) -> ServiceEnv:
    env = ServiceEnv(directory)
    common = _common_functions()
    src = ROOT / "services" / directory / "src"
    for path in sorted(src.rglob("settings.py")):
        env.has_settings = True
        for var in scan_file(path):
            _add(env.vars, var)
        for function in _calls(ast.parse(path.read_text()), set(common)):
            for var in common[function]:
                _add(env.vars, var)
    return env


def scan_all() -> dict[str, ServiceEnv]:
    return {directory: scan_service(directory) for directory in service_dirs()}


def all_variable_names() -> set[str]:
    names = {var.name for service in scan_all().values() for var in service.vars.values()}
    names.update(v.name for v in scan_file(COMMON_SETTINGS))
    return names
