"""Every config option composes and instantiates; every plugin keeps the frozen contract."""

import importlib
import inspect
import os
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

import optimize.__main__  # noqa: F401 - registers the ${repo_root:} resolver
from prompt_opt_api import Advisor, Optimizer, signature_problem
from tests.task_factory import make_task

CONF = Path(__file__).resolve().parent.parent / "conf"


def _options(group):
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def _compose(overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        return compose(config_name="config", overrides=overrides)


def test_every_group_has_options():
    for group in ("optimizer", "model", "advisor", "task"):
        assert _options(group), group


@pytest.mark.parametrize("name", _options("optimizer"))
def test_optimizer_configs_instantiate_and_keep_the_signature(name):
    obj = instantiate(_compose([f"optimizer={name}"]).optimizer)
    assert isinstance(obj, Optimizer)
    assert signature_problem(type(obj)) is None, signature_problem(type(obj))


def test_every_optimizer_module_keeps_the_signature():
    """Also plugins not (yet) wired to a YAML: the signature is frozen for all (names, order
    and kinds of the parameters; annotations may be strings or objects)."""
    checked = 0
    for path in (CONF.parent / "optimizers").glob("*.py"):
        module = importlib.import_module(f"optimizers.{path.stem}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Optimizer) and cls is not Optimizer and cls.__module__ == module.__name__:
                assert signature_problem(cls) is None, signature_problem(cls)
                checked += 1
    assert checked > 5  # the loop saw the plugins


def test_the_signature_check_sees_names_order_and_kinds_not_annotations():
    from prompt_opt_api import Pair, PromptEvaluator, Trial

    class Objects(Optimizer):  # annotations as objects, as in a module without postponed annotations
        def optimize(self, pair: Pair, evaluator: PromptEvaluator, advisor: Advisor | None) -> list[Trial]:
            return []

    class NoAdvisor(Optimizer):
        def optimize(self, pair, evaluator):
            return []

    class Swapped(Optimizer):
        def optimize(self, pair, advisor, evaluator):
            return []

    class Starred(Optimizer):
        def optimize(self, pair, evaluator, *advisor):
            return []

    assert signature_problem(Objects) is None
    assert signature_problem(NoAdvisor) == (
        "NoAdvisor.optimize(self, pair, evaluator) lacks the parameter advisor; every optimizer's optimize is "
        "(self, pair, evaluator, advisor) (prompt_opt_api.Optimizer)")
    assert "changes the contract" in signature_problem(Swapped)
    assert "changes the contract" in signature_problem(Starred)


@pytest.mark.parametrize("name", _options("model"))
def test_model_configs_instantiate_without_loading_weights(name):
    """Construction is cheap: no weights, no inference library imported (in a fresh process)."""
    import subprocess
    import sys

    code = (
        "import sys, optimize.__main__\n"
        "from hydra import compose, initialize_config_dir\n"
        "from hydra.utils import instantiate\n"
        "from prompt_opt_api import AnswerModel\n"
        f"with initialize_config_dir(config_dir={str(CONF)!r}, version_base=None):\n"
        f"    cfg = compose(config_name='config', overrides=['model={name}'])\n"
        "obj = instantiate(cfg.model)\n"
        "assert isinstance(obj, AnswerModel) and obj.name\n"
        "loaded = [m for m in ('torch', 'transformers', 'llama_cpp', 'litellm') if m in sys.modules]\n"
        "print('LOADED', loaded)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=CONF.parent,
                         env=dict(os.environ, PYTHONPATH=str(CONF.parent)), timeout=120)
    assert "LOADED []" in out.stdout, out.stdout + out.stderr


@pytest.mark.parametrize("name", _options("advisor"))
def test_advisor_configs_instantiate_without_network_or_secrets(name):
    cfg = _compose([f"advisor={name}"]).advisor
    assert cfg.name or cfg.get("members")  # a panel names itself after its members
    if cfg.get("_target_"):
        obj = instantiate(cfg)
        assert isinstance(obj, Advisor) and obj.name == (cfg.name or "+".join(m.name for m in obj.members()))
        assert all(isinstance(m, Advisor) for m in obj.members())
    # secrets are named, never stored: no config value looks like a key (members included)
    flat = OmegaConf.to_container(cfg, resolve=True)
    stack = [flat]
    while stack:
        node = stack.pop()
        for key, value in node.items():
            if isinstance(value, dict):
                stack.append(value)
            assert not (isinstance(value, str) and value.startswith(("sk-", "AIza"))), key


def test_task_configs_instantiate(tmp_path):
    data = make_task(tmp_path, n_images=3)
    for name in _options("task"):
        task = instantiate(_compose([f"task={name}", f"task.csv={data}", "task.pairs=[]"]).task)
        assert len(task.examples) == 6


def test_help_does_not_import_heavy_libraries():
    import subprocess
    import sys

    code = ("import sys, runpy; sys.argv=['optimize','--help'];\n"
            "try:\n    runpy.run_module('optimize', run_name='__main__')\nexcept SystemExit: pass\n"
            "heavy=[m for m in ('torch','transformers','llama_cpp','litellm','dspy','textgrad','jiwer') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=CONF.parent,
                         env=dict(os.environ, PYTHONPATH=str(CONF.parent)), timeout=60)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr
