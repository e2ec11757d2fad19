"""The optional extras: which package each optional module comes from, and the one error every layer raises
when one is missing.

Every optional dependency (``EXTRAS``: matplotlib, scikit-learn, tqdm, Numba, threadpoolctl, the hf
extra's safetensors and huggingface_hub, and the mpi extra's mpi4py) is imported through ``import_optional``, whose ImportError says
what needed it and the one command that installs it; ``missing_extra`` finds that extra again in an error's
chain, so the command line can print it as one line. This file sits at the bottom of the layout, so the
models (GPT-2's safetensors) and the plots (matplotlib) use the same mechanism.
"""

import importlib

# module -> (what pip installs, the tinytransformer extra that brings it)
EXTRAS = {
    "matplotlib": ("matplotlib", "plots"),
    "sklearn": ("scikit-learn", "data"),
    "tqdm": ("tqdm", "data"),
    "numba": ("numba", "fast"),
    "threadpoolctl": ("threadpoolctl", "fast"),
    "safetensors": ("safetensors", "hf"),
    "huggingface_hub": ("huggingface_hub", "hf"),
    "mpi4py": ("mpi4py mpich", "mpi"),  # MPI itself (mpiexec and the library) comes as the mpich wheel
}


def install_hint(module) -> str:
    """How to install the optional ``module``: "pip install matplotlib (or the plots extra: ...)"."""
    package, extra = EXTRAS[module.split(".")[0]]
    return f"pip install {package} (or the {extra} extra: pip install 'tinytransformer[{extra}]')"


def import_optional(module, needed_for):
    """``import module``, or an ImportError (``.name`` = the missing module) saying that ``needed_for``
    needs it and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        top = module.split(".")[0]
        raise ImportError(f"{needed_for} needs {EXTRAS[top][0]}, which is not installed: {install_hint(top)}",
                          name=top) from err


def missing_extra(err):
    """The optional module (a key of ``EXTRAS``) whose absence raised ``err``, or None for any other error."""
    while err is not None:
        name = getattr(err, "name", None)
        if isinstance(err, ImportError) and name and name.split(".")[0] in EXTRAS:
            return name.split(".")[0]
        err = err.__cause__ or err.__context__
    return None
